"""The exporter protocol: the only part of the SDK that talks to the outside world.

Every call takes an absolute deadline (``time.monotonic()`` seconds) that the exporter must not
outlive; ``ExportResult.rejected`` carries OTLP partial success (spans the receiver refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = ["ExportResult", "SpanExporter"]


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What became of one batch: ``success`` for the batch, ``rejected`` spans within it."""

    success: bool
    rejected: int = 0
    error: str | None = None


SUCCESS = ExportResult(True)


@runtime_checkable
class SpanExporter(Protocol):
    def export(self, spans: Sequence[ReadableSpan], *, deadline: float) -> ExportResult:
        """Send ``spans``; return before ``deadline``. Never raises for transport errors."""
        ...

    def force_flush(self, *, deadline: float) -> bool:
        """Send anything buffered inside the exporter; True when nothing is left."""
        ...

    def shutdown(self, *, deadline: float) -> None:
        """Release connections; after this, export fails fast."""
        ...
