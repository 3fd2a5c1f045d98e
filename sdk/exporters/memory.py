"""An exporter that keeps spans in a list: the recorder behind tests and the pytest helpers."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from telemetry_run.sdk import forking
from telemetry_run.sdk.exporters import SUCCESS, ExportResult

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = ["InMemorySpanExporter"]


class InMemorySpanExporter:
    """Stores every exported span in order; ``clear()`` empties it."""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()
        self._stopped = False
        _instances.add(self)

    def export(self, spans: Sequence[ReadableSpan], *, deadline: float) -> ExportResult:
        if self._stopped:
            return ExportResult(False, error="exporter is shut down")
        with self._lock:
            self._spans.extend(spans)
        return SUCCESS

    def get_finished_spans(self) -> tuple[ReadableSpan, ...]:
        with self._lock:
            return tuple(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        self._stopped = True


# A process forked while another thread held the lock must not inherit it locked.
_instances: weakref.WeakSet[InMemorySpanExporter] = weakref.WeakSet()


def _reinit_locks_after_fork() -> None:
    for exporter in list(_instances):
        exporter._lock = threading.Lock()


forking.register(_reinit_locks_after_fork)
