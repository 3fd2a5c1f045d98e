"""SimpleSpanProcessor: exports each span as it ends, on the application's thread.

For tests and the console; it blocks the caller for as long as the export takes, which is why a
production pipeline uses the BatchSpanProcessor.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING

from telemetry_run.sdk import forking
from telemetry_run.sdk.context import SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from telemetry_run.sdk.diagnostics import Diagnostics, get_diagnostics
from telemetry_run.sdk.exporters import ExportResult, SpanExporter
from telemetry_run.sdk.processors import SpanProcessor

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = [
    "SimpleSpanProcessor",
    "count_export_result",
    "record_export_result",
    "warn_export_failed",
]


def record_export_result(
    diagnostics: Diagnostics, exporter: SpanExporter, count: int, result: ExportResult
) -> None:
    """Count one batch's outcome and say why it failed (rate limited per exporter)."""
    count_export_result(diagnostics, count, result)
    if not result.success:
        warn_export_failed(diagnostics, exporter, count, result)


def count_export_result(diagnostics: Diagnostics, count: int, result: ExportResult) -> None:
    """Count one batch's outcome, without a word (callable under a processor's lock)."""
    if result.success:
        # The receiver reports ``rejected`` (OTLP partial success): never trust it beyond the
        # batch, or the counters would claim more spans than were produced.
        rejected = min(max(result.rejected, 0), count)
        diagnostics.spans_exported.add(count - rejected)
        if rejected:
            diagnostics.drop("rejected", rejected)
    else:
        diagnostics.spans_dropped["export_failed"].add(count)


def warn_export_failed(
    diagnostics: Diagnostics, exporter: SpanExporter, count: int, result: ExportResult
) -> None:
    """Say why a batch failed, rate limited per exporter."""
    if not result.success:
        diagnostics.warn(
            f"export-failed:{type(exporter).__name__}",
            "failed to export %d %s(s) with %s: %s",
            count,
            diagnostics.noun,
            type(exporter).__name__,
            result.error or "unknown error",
        )


def call_export(
    exporter: SpanExporter,
    spans: list[ReadableSpan],
    deadline: float,
    diagnostics: Diagnostics,
) -> ExportResult:
    """``exporter.export`` with its exceptions turned into a failed result."""
    try:
        return exporter.export(spans, deadline=deadline)
    except Exception as exc:  # noqa: BLE001  # an exporter's bug fails the batch, nothing more
        diagnostics.internal_error(f"{type(exporter).__name__}.export", exc)
        return ExportResult(False, error=f"{type(exc).__name__}: {exc}")


class SimpleSpanProcessor(SpanProcessor):
    """Exports every sampled span synchronously when it ends."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        export_timeout: float = 30.0,
        diagnostics: Diagnostics | None = None,
    ):
        self._exporter = exporter
        self._export_timeout = export_timeout if export_timeout > 0 else float("inf")
        self._diagnostics = diagnostics or get_diagnostics()
        self._shutdown = False
        self._lock = threading.Lock()
        _instances.add(self)

    def on_end(self, span: ReadableSpan) -> None:
        if not span.trace_flags & 1:
            return
        diagnostics = self._diagnostics
        diagnostics.spans_queued.incr()
        if self._shutdown:
            diagnostics.drop("shutdown")
            return
        token = attach(set_value(SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._lock:
                deadline = time.monotonic() + self._export_timeout
                result = call_export(self._exporter, [span], deadline, diagnostics)
            record_export_result(diagnostics, self._exporter, 1, result)
        finally:
            detach(token)

    def force_flush(self, *, deadline: float) -> bool:
        try:
            return self._exporter.force_flush(deadline=deadline)
        except Exception as exc:  # noqa: BLE001
            self._diagnostics.internal_error(f"{type(self._exporter).__name__}.force_flush", exc)
            return False

    def shutdown(self, *, deadline: float) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        try:
            self._exporter.shutdown(deadline=deadline)
        except Exception as exc:  # noqa: BLE001
            self._diagnostics.internal_error(f"{type(self._exporter).__name__}.shutdown", exc)


# The lock is held for a whole export: a process forked while another thread was exporting would
# inherit it locked, and the child's first span end would wait forever.
_instances: weakref.WeakSet[SimpleSpanProcessor] = weakref.WeakSet()


def _reinit_locks_after_fork() -> None:
    for processor in list(_instances):
        processor._lock = threading.Lock()


forking.register(_reinit_locks_after_fork)
