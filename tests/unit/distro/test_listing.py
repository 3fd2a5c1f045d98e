"""`telemetry-run --list` and `--doctor` say whether the native speedups load, and why not."""

from __future__ import annotations

import pytest

from telemetry_run.doctor import diagnose, render_text
from telemetry_run.listing import render
from telemetry_run.sdk import _native
from tests.native_twins import require_native


def _native_line(report: str) -> str:
    (line,) = [line for line in report.splitlines() if line.startswith("Native speedups:")]
    return line


def test_the_listing_names_the_loaded_native_module() -> None:
    require_native()
    line = _native_line(render({}))
    assert line.startswith("Native speedups: loaded (") and "_speedups" in line


def test_the_listing_says_when_the_native_module_does_not_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_native, "speedups", None)  # what an install without a compiler has
    monkeypatch.setattr(_native, "error", "No module named 'telemetry_run.sdk._speedups'")
    line = _native_line(render({}))
    assert line.startswith("Native speedups: not loaded (No module named")
    assert "the Python code runs" in line


def test_the_doctor_reports_the_native_module_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"OTEL_TRACES_EXPORTER": "none"}  # no live exporter check: only the report
    if _native.speedups is not None:
        report = diagnose(environ)
        assert report["native_speedups"]["loaded"] is True
        assert report["native_speedups"]["path"] == _native.speedups.__file__
        assert _native_line(render_text(report)).startswith("Native speedups: loaded (")
    monkeypatch.setattr(_native, "speedups", None)
    monkeypatch.setattr(_native, "error", "No module named 'telemetry_run.sdk._speedups'")
    report = diagnose(environ)
    assert report["native_speedups"] == {
        "loaded": False,
        "path": None,
        "error": "No module named 'telemetry_run.sdk._speedups'",
    }
    line = _native_line(render_text(report))
    assert line.startswith("Native speedups: not loaded (No module named")
    assert "the Python code runs" in line
