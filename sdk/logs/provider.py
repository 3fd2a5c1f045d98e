"""LoggerProvider: the resource, the log record processors and their counters, in one place
the exit hook can flush and shut down within its deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from telemetry_run.sdk.diagnostics import Diagnostics

if TYPE_CHECKING:
    from telemetry_run.sdk.logs import LogData
    from telemetry_run.sdk.logs.processor import BatchLogRecordProcessor
    from telemetry_run.sdk.resources import Resource

__all__ = ["LoggerProvider"]


class LoggerProvider:
    """Fans each record out to the processors (one per exporter); one failing never affects
    the others. ``diagnostics`` counts log records, apart from the spans' counters."""

    def __init__(
        self,
        resource: Resource | Callable[[], Resource],
        diagnostics: Diagnostics | None = None,
        *,
        max_attributes: int = 128,
        max_attribute_length: int | None = None,
    ) -> None:
        if max_attributes < 0 or (max_attribute_length is not None and max_attribute_length < 0):
            raise ValueError("attribute limits must be >= 0")
        #: OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT and ..._VALUE_LENGTH_LIMIT (None: no limit).
        self.max_attributes = max_attributes
        self.max_attribute_length = max_attribute_length
        # A callable: the tracer provider's resource, read at each record, so a forked child's
        # records carry its own process.pid as its spans do.
        self._resource = resource if callable(resource) else (lambda: resource)
        self.diagnostics = diagnostics or Diagnostics(noun="log record")
        self.processors: tuple[BatchLogRecordProcessor, ...] = ()

    @property
    def resource(self) -> Resource:
        return self._resource()

    def add_log_record_processor(self, processor: BatchLogRecordProcessor) -> None:
        self.processors = (*self.processors, processor)

    def emit(self, record: LogData) -> None:
        for processor in self.processors:
            try:
                processor.emit(record)
            except Exception as exc:  # noqa: BLE001  # never reaches the application
                self.diagnostics.internal_error(f"{type(processor).__name__}.emit", exc)

    def force_flush(self, timeout: float) -> bool:
        """Export what is queued within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        flushed = True
        for processor in self.processors:
            flushed = processor.force_flush(deadline=deadline) and flushed
        return flushed

    def shutdown(self, timeout: float) -> None:
        """Drain and stop every processor within ``timeout`` seconds (what is left is counted)."""
        deadline = time.monotonic() + timeout
        for processor in self.processors:
            processor.shutdown(deadline=deadline)

    def idle(self) -> bool:
        """Every record produced was exported or counted as dropped."""
        counts = self.diagnostics.snapshot()
        return counts["produced"] <= counts["exported"] + counts["dropped"]
