"""BatchLogRecordProcessor: the span batch processor's queue, worker and outage handling, for
log records (``OTEL_BLRP_*``).

Its own bounded queue and its own worker thread, and its own counters (a ``Diagnostics`` whose
noun is "log record"), so a flood of log records never pushes spans out, and the exit line
reports log drops apart from span drops. ``emit`` is what ``on_end`` is for spans: a length
check and a ``deque.append`` on the application's thread, never blocking, never raising; a full
queue drops the new record and counts it (``queue_full``). Fork safety, the bounded flush and
shutdown, and the recovery after an outage are the span processor's (``processors/batch.py``).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, cast

from telemetry_run.sdk import forking
from telemetry_run.sdk.logs._guard import exporting
from telemetry_run.sdk.processors.batch import BatchSpanProcessor, _getpid

if TYPE_CHECKING:
    from telemetry_run.sdk.diagnostics import Diagnostics
    from telemetry_run.sdk.exporters import SpanExporter
    from telemetry_run.sdk.logs import LogData
    from telemetry_run.sdk.logs.exporter import LogExporter

__all__ = ["BatchLogRecordProcessor"]


class BatchLogRecordProcessor(BatchSpanProcessor):
    """Queues log records and exports them in batches from one background thread.

    The defaults are the specification's for ``OTEL_BLRP_*`` (a 1 s schedule delay, where
    spans wait 5 s). Times are in seconds; ``export_timeout=0`` means no limit.
    """

    _worker_name = "telemetry-run BatchLogRecordProcessor"

    def __init__(
        self,
        exporter: LogExporter,
        max_queue_size: int = 2048,
        schedule_delay: float = 1.0,
        max_export_batch_size: int = 512,
        export_timeout: float = 30.0,
        *,
        diagnostics: Diagnostics,
    ):
        # The exporter protocol is the span one with LogData for spans: the machinery never
        # looks inside what it queues.
        super().__init__(
            cast("SpanExporter", exporter),
            max_queue_size,
            schedule_delay,
            max_export_batch_size,
            export_timeout,
            diagnostics=diagnostics,
        )

    def on_end(self, span: object) -> None:  # spans never come here
        """Not a span processor: log records arrive through ``emit``."""

    def emit(self, record: LogData) -> None:
        """Queue ``record``; on the application's thread, so never blocks and never raises."""
        queue = self._queue
        # As BatchSpanProcessor.on_end: a fork that skipped Python's hooks is repaired here.
        if (not queue or len(queue) >= self._max_queue_size) and _getpid() != forking.repaired_in():
            forking.after_fork_in_child()
            queue = self._queue
        self._count_queued()
        if self._shutdown:
            self._diagnostics.drop("shutdown")
            return
        if len(queue) >= self._max_queue_size:
            if self._failing:  # an outage: the oldest record makes room
                queue.append(record)  # type: ignore[arg-type]  # the queue holds LogData here
                with contextlib.suppress(IndexError):
                    queue.popleft()
                    self._diagnostics.drop("queue_full")
                return
            self._diagnostics.drop("queue_full")
            return
        queue.append(record)  # type: ignore[arg-type]
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def _export_queued(self, count: int, deadline: float) -> None:
        # Whatever the exporter (or a library under it) logs on this thread is not exported:
        # the worker's thread is excluded by its name, this covers a shutdown's own exports.
        with exporting():
            super()._export_queued(count, deadline)
