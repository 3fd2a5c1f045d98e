"""The plugin module as telemetry-run sees it: registered, cheap to import, declaring its names."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

from telemetry_run.plugin import InstrumentorSpec, Variable

from telemetry_run_example import plugin


def test_the_entry_point_names_the_plugin_module() -> None:
    (entry_point,) = [
        ep for ep in importlib.metadata.entry_points(group="telemetry_run") if ep.name == "example"
    ]
    assert entry_point.value == "telemetry_run_example.plugin"
    assert entry_point.load() is plugin


def test_importing_the_plugin_imports_neither_the_sdk_nor_the_target() -> None:
    """What every instrumented process pays at start-up for this plugin."""
    code = (
        "import json, sys\n"
        "import telemetry_run_example.plugin as plugin\n"
        "plugin.telemetry_run_variables(); plugin.telemetry_run_instrumentors()\n"
        # The SDK's private leaves (its logger, records, version) load with the configuration.
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(("
        "'telemetry_run.sdk.', 'tinyqueue', 'telemetry_run_example.', 'wrapt'))"
        " and not m.startswith('telemetry_run.sdk._'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout) == ["telemetry_run_example.plugin"]


def test_declared_names() -> None:
    assert plugin.telemetry_run_provides() == {"sampler": ["route"]}
    (variable,) = plugin.telemetry_run_variables()
    assert isinstance(variable, Variable)
    assert variable.name == "TELEMETRY_RUN_EXAMPLE_DROP_PREFIXES"
    assert variable.default_text() == "/health"
    (spec,) = plugin.telemetry_run_instrumentors()
    assert spec == InstrumentorSpec(
        name="tinyqueue",
        modules=("tinyqueue",),
        requires="telemetry-run-example>=0.1",
        load="telemetry_run_example.instrumentor:TinyQueueInstrumentor",
        description=spec.description,
    )
    assert spec.distribution == "telemetry-run-example"
