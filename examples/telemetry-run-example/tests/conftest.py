"""telemetry-run's pytest helpers (the ``span_recorder`` fixture) and the instrumented queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from telemetry_run.sdk import get_diagnostics

from telemetry_run_example.instrumentor import TinyQueueInstrumentor

if TYPE_CHECKING:
    # Not imported at run time: pytest must be the first to import telemetry_run.testing, to
    # rewrite its asserts (importing it here first is a PytestAssertRewriteWarning).
    from telemetry_run.sdk.diagnostics import InternalError
    from telemetry_run.testing import SpanRecorder

pytest_plugins = ["telemetry_run.testing"]


@pytest.fixture
def internal_errors(monkeypatch: pytest.MonkeyPatch) -> list[InternalError]:
    """What ``guard`` reported: our wrappers report to the process-wide diagnostics."""
    errors: list[InternalError] = []
    monkeypatch.setattr(get_diagnostics(), "on_internal_error", errors.append)
    return errors


@pytest.fixture
def instrumentor(
    span_recorder: SpanRecorder, internal_errors: list[InternalError]
) -> Iterator[TinyQueueInstrumentor]:
    """tinyqueue instrumented with the recorder's provider; no internal error may be reported."""
    instrumentor = TinyQueueInstrumentor()
    assert instrumentor.instrument(span_recorder.provider)
    yield instrumentor
    instrumentor.uninstrument()
    assert not internal_errors, internal_errors


@pytest.fixture
def instrumented(instrumentor: TinyQueueInstrumentor, span_recorder: SpanRecorder) -> SpanRecorder:
    """The recorder of the spans the instrumented tinyqueue makes."""
    return span_recorder
