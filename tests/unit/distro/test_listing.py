"""``telemetry-run --list`` says whether the native speedups load, and why not when they do not."""

from __future__ import annotations

import pytest

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
