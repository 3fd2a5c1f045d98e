"""The log exporter protocol: the span exporter's, with log records for spans."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from telemetry_run.sdk.exporters import ExportResult
    from telemetry_run.sdk.logs import LogData

__all__ = ["LogExporter"]


@runtime_checkable
class LogExporter(Protocol):
    def export(self, records: Sequence[LogData], *, deadline: float) -> ExportResult:
        """Send ``records``; return before ``deadline``. Never raises for transport errors."""
        ...

    def force_flush(self, *, deadline: float) -> bool:
        """Send anything buffered inside the exporter; True when nothing is left."""
        ...

    def shutdown(self, *, deadline: float) -> None:
        """Release connections; after this, export fails fast."""
        ...
