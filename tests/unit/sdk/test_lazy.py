"""The one lazy re-export mechanism: every exported name resolves to its home's object, once."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    "telemetry_run",
    "telemetry_run.plugin",
    "telemetry_run.sdk",
    "telemetry_run.sdk.trace",
    "telemetry_run.sdk.exporters.otlp",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves_and_is_listed(name: str) -> None:
    module = importlib.import_module(name)
    assert dir(module) == sorted(module.__all__)
    for exported in module.__all__:
        value = getattr(module, exported)
        assert value is not None
        assert vars(module)[exported] is value  # set on the module: the next lookup is plain
    with pytest.raises(AttributeError, match=f"module '{name}' has no attribute 'nothing'"):
        module.nothing  # noqa: B018


def test_a_name_is_imported_only_when_first_used() -> None:
    code = (
        "import sys\n"
        "import telemetry_run.sdk as sdk, telemetry_run.sdk.context as context\n"
        "before = [m in sys.modules for m in ('telemetry_run.sdk.exporters.console',"
        " 'telemetry_run.sdk._executor')]\n"
        "exporter = sdk.ConsoleSpanExporter\n"
        "pool = context.ContextThreadPoolExecutor\n"
        "import concurrent.futures\n"
        "print(*before, exporter.__module__, issubclass(pool, concurrent.futures.Executor))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["False", "False", "telemetry_run.sdk.exporters.console", "True"]
