"""``telemetry-run --list`` says whether the native speedups load, and why not when they do not."""

from __future__ import annotations

import sys

import pytest

from telemetry_run import sdk
from telemetry_run.listing import render
from telemetry_run.sdk.propagation import tracecontext
from tests.server_process import in_ci


def _native_line(report: str) -> str:
    (line,) = [line for line in report.splitlines() if line.startswith("Native speedups:")]
    return line


def test_the_listing_names_the_loaded_native_module() -> None:
    if tracecontext._native_parse is None:
        if in_ci():
            pytest.fail("CI must build telemetry_run.sdk._speedups")
        pytest.skip("telemetry_run.sdk._speedups is not built here (no C compiler at install)")
    line = _native_line(render({}))
    assert line.startswith("Native speedups: loaded (") and "_speedups" in line


def test_the_listing_says_when_the_native_module_does_not_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(sdk, "_speedups", raising=False)
    monkeypatch.setitem(sys.modules, "telemetry_run.sdk._speedups", None)  # import fails
    line = _native_line(render({}))
    assert line.startswith("Native speedups: not loaded (")
    assert "the Python code runs" in line
