"""The exporter protocol: the only part of the SDK that talks to the outside world.

Every call takes an absolute deadline (``time.monotonic()`` seconds) that the exporter must not
outlive; ``ExportResult.rejected`` carries OTLP partial success (spans the receiver refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from telemetry_run.sdk._record import FrozenRecord

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = ["ExportResult", "SpanExporter"]


class ExportResult(FrozenRecord):
    """What became of one batch: ``success`` for the batch, ``rejected`` spans within it.

    ``retryable`` marks a failure that a later attempt may not have (the collector was down or
    slow until the deadline): the batch processor then keeps the spans queued, room permitting,
    instead of dropping them.
    """

    __match_args__ = ("success", "rejected", "error", "retryable")
    __slots__ = __match_args__

    success: bool
    rejected: int
    error: str | None
    retryable: bool

    def __init__(
        self,
        success: bool,
        rejected: int = 0,
        error: str | None = None,
        retryable: bool = False,
    ) -> None:
        object.__setattr__(self, "success", success)
        object.__setattr__(self, "rejected", rejected)
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "retryable", retryable)


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
