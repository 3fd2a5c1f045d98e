"""Span processors: the hand-off from a finished span to an exporter.

``on_end`` runs on the application's thread at every span end, so it must never block and never
raise. Flush and shutdown take an absolute deadline (``time.monotonic()`` seconds) that is passed
down to the exporter and never extended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from telemetry_run.sdk.diagnostics import Diagnostics, get_diagnostics

if TYPE_CHECKING:
    from telemetry_run.sdk.context import Context
    from telemetry_run.sdk.trace.span import ReadableSpan, RecordingSpan

__all__ = ["MultiSpanProcessor", "SpanProcessor"]


class SpanProcessor:
    """Base class: override what you need; the defaults do nothing."""

    def on_start(self, span: RecordingSpan, parent_context: Context | None) -> None:
        """Called at span start, on the application's thread; keep it cheap."""

    def on_end(self, span: ReadableSpan) -> None:
        """Called once per ended span, on the application's thread: never block, never raise."""

    def force_flush(self, *, deadline: float) -> bool:
        """Export what is pending before ``deadline``; False if that was not possible."""
        return True

    def shutdown(self, *, deadline: float) -> None:
        """Flush and release resources before ``deadline``; idempotent."""


def _overrides_on_start(processor: SpanProcessor) -> bool:
    return getattr(type(processor), "on_start", None) is not SpanProcessor.on_start


class MultiSpanProcessor(SpanProcessor):
    """Fans out to several processors in order; one failing never affects the others."""

    def __init__(self, diagnostics: Diagnostics | None = None) -> None:
        self._processors: tuple[SpanProcessor, ...] = ()
        self._starters: tuple[SpanProcessor, ...] = ()
        self._diagnostics = diagnostics or get_diagnostics()

    @property
    def processors(self) -> tuple[SpanProcessor, ...]:
        return self._processors

    @property
    def has_on_start(self) -> bool:
        return bool(self._starters)

    def add(self, processor: SpanProcessor) -> None:
        # Copy-on-write tuples: spans ending on other threads iterate a stable snapshot.
        self._processors = (*self._processors, processor)
        if _overrides_on_start(processor):
            self._starters = (*self._starters, processor)

    def on_start(self, span: RecordingSpan, parent_context: Context | None) -> None:
        for processor in self._starters:
            try:
                processor.on_start(span, parent_context)
            except Exception as exc:  # noqa: BLE001  # a processor's bug never reaches the app
                self._diagnostics.internal_error(f"{type(processor).__name__}.on_start", exc)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._processors:
            try:
                processor.on_end(span)
            except Exception as exc:  # noqa: BLE001
                self._diagnostics.internal_error(f"{type(processor).__name__}.on_end", exc)

    def force_flush(self, *, deadline: float) -> bool:
        flushed = True
        for processor in self._processors:
            try:
                flushed = processor.force_flush(deadline=deadline) and flushed
            except Exception as exc:  # noqa: BLE001
                self._diagnostics.internal_error(f"{type(processor).__name__}.force_flush", exc)
                flushed = False
        return flushed

    def shutdown(self, *, deadline: float) -> None:
        for processor in self._processors:
            try:
                processor.shutdown(deadline=deadline)
            except Exception as exc:  # noqa: BLE001
                self._diagnostics.internal_error(f"{type(processor).__name__}.shutdown", exc)
