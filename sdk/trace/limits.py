"""Span limits: how much one span may hold, so a runaway loop cannot grow memory without bound."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SpanLimits"]


@dataclass(frozen=True, slots=True)
class SpanLimits:
    """Counts and value lengths per span; ``None`` for a length means no limit.

    What does not fit is dropped and counted on the span (exported as the OTLP
    ``dropped_*_count`` fields). Defaults are the specification's.
    """

    max_attributes: int = 128
    max_attribute_length: int | None = None
    max_events: int = 128
    max_links: int = 128
    max_event_attributes: int = 128
    max_link_attributes: int = 128

    def __post_init__(self) -> None:
        for name in (
            "max_attributes",
            "max_events",
            "max_links",
            "max_event_attributes",
            "max_link_attributes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"SpanLimits.{name} must be >= 0")
        if self.max_attribute_length is not None and self.max_attribute_length < 0:
            raise ValueError("SpanLimits.max_attribute_length must be >= 0 or None")
