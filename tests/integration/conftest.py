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
    """The test process's environment without OTEL_*/TELEMETRY_RUN_* leaking in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "TELEMETRY_RUN_", "PYTHONPATH"))
    }
    env.update({"OTEL_TRACES_EXPORTER": "none", "PYTHONUNBUFFERED": "1"})
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
