"""Helpers for tests that run real processes under the launcher (loopback only, bounded)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

LAUNCHER = [sys.executable, "-m", "telemetry_run"]
PYTHON = sys.executable


def clean_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without OTEL_*/TELEMETRY_RUN_* leaking in; no traces and
    no metrics exported unless a test asks (the instrumentors' duration metrics and the runtime
    metrics would otherwise go to a collector on localhost that is not there)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "TELEMETRY_RUN_", "PYTHONPATH"))
    }
    env.update(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "PYTHONUNBUFFERED": "1"}
    )
    env.update(overrides)
    return env


def launch(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    input: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAUNCHER, *args],
        env=dict(env) if env is not None else clean_env(),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class FakeDistribution:
    """A plugin 'installed' by putting a module and its .dist-info folder on PYTHONPATH."""

    root: Path

    def add(self, name: str, module_source: str, entry_point: str | None = None) -> None:
        (self.root / f"{name}.py").write_text(textwrap.dedent(module_source))
        info = self.root / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[telemetry_run]\n{entry_point or name} = {name}\n")


@pytest.fixture
def plugins_dir(tmp_path: Path) -> FakeDistribution:
    root = tmp_path / "site"
    root.mkdir()
    return FakeDistribution(root)


HANGING_EXPORTER = """
import threading
from telemetry_run.plugin import hookimpl, ExportResult

class HangingExporter:
    '''An exporter whose export never returns: a collector that accepts and never answers.'''

    def export(self, spans, *, deadline):
        threading.Event().wait()
        return ExportResult(True)

    def force_flush(self, *, deadline):
        return True

    def shutdown(self, *, deadline):
        pass

@hookimpl
def telemetry_run_span_exporter(name, config):
    return HangingExporter() if name == "hang" else None

@hookimpl
def telemetry_run_provides():
    return {"exporter": ["hang"]}
"""


# -- servers under the launcher (tests/integration/test_servers.py) ---------------------------

JSONL_PLUGIN = """
import json
import os
import sys

from telemetry_run.plugin import ExportResult, Variable, hookimpl, parse_str


def _append(path, record):
    # One os.write of one line on an O_APPEND descriptor: lines written by several processes
    # at once land whole, never interleaved.
    line = (json.dumps(record, sort_keys=True) + "\\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class JsonlExporter:
    '''Appends one JSON line per span, with the pid of the exporting process.'''

    def __init__(self, path):
        self.path = path

    def export(self, spans, *, deadline):
        for span in spans:
            _append(self.path, {
                "name": span.name,
                "trace_id": f"{span.context.trace_id:032x}",
                "span_id": f"{span.context.span_id:016x}",
                "pid": os.getpid(),
                "attributes": dict(span.attributes),
            })
        return ExportResult(True)

    def force_flush(self, *, deadline):
        return True

    def shutdown(self, *, deadline):
        pass


@hookimpl
def telemetry_run_variables():
    return [
        Variable("TEST_JSONL_SPANS", parse_str, None, "file the jsonl exporter appends spans to"),
        Variable("TEST_JSONL_BOOTSTRAPS", parse_str, None, "file each bootstrap appends to"),
    ]


@hookimpl
def telemetry_run_provides():
    return {"exporter": ["jsonl"]}


@hookimpl
def telemetry_run_span_exporter(name, config):
    if name != "jsonl" or not config["TEST_JSONL_SPANS"]:
        return None
    return JsonlExporter(config["TEST_JSONL_SPANS"])


@hookimpl
def telemetry_run_configure(config, tracer_provider):
    if config["TEST_JSONL_BOOTSTRAPS"]:
        _append(
            config["TEST_JSONL_BOOTSTRAPS"],
            {"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv},
        )
"""
