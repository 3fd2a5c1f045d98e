"""Span limits: how much one span may hold, so a runaway loop cannot grow memory without bound."""

from __future__ import annotations

from telemetry_run.sdk._record import FrozenRecord

__all__ = ["SpanLimits"]


class SpanLimits(FrozenRecord):
    """Counts and value lengths per span; ``None`` for a length means no limit.

    What does not fit is dropped and counted on the span (exported as the OTLP
    ``dropped_*_count`` fields). Defaults are the specification's.
    """

    __match_args__ = (
        "max_attributes",
        "max_attribute_length",
        "max_events",
        "max_links",
        "max_event_attributes",
        "max_link_attributes",
    )
    __slots__ = __match_args__

    max_attributes: int
    max_attribute_length: int | None
    max_events: int
    max_links: int
    max_event_attributes: int
    max_link_attributes: int

    def __init__(
        self,
        max_attributes: int = 128,
        max_attribute_length: int | None = None,
        max_events: int = 128,
        max_links: int = 128,
        max_event_attributes: int = 128,
        max_link_attributes: int = 128,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "max_attributes", max_attributes)
        setattr_(self, "max_attribute_length", max_attribute_length)
        setattr_(self, "max_events", max_events)
        setattr_(self, "max_links", max_links)
        setattr_(self, "max_event_attributes", max_event_attributes)
        setattr_(self, "max_link_attributes", max_link_attributes)
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
