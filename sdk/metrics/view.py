"""Views: which instruments a stream is made for, and how that stream differs from the default.

A view selects by instrument name (``*`` and ``?`` wildcards), instrument type, unit, and meter
name, version and schema URL; every criterion given must match. It may rename the stream
(only when it selects one instrument by its exact name), describe it, aggregate it otherwise,
keep only some attribute keys (the way to bound cardinality) and cap its series count.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from telemetry_run.sdk.metrics.aggregation import Aggregation

__all__ = ["View"]


class View:
    """One stream description; ``MeterProvider(views=[...])`` takes any number.

    An instrument that no view selects gets its default stream; one that several views select
    gets a stream from each.
    """

    __slots__ = (
        "aggregation",
        "attribute_keys",
        "cardinality_limit",
        "description",
        "instrument_name",
        "instrument_type",
        "instrument_unit",
        "meter_name",
        "meter_schema_url",
        "meter_version",
        "name",
    )

    def __init__(
        self,
        instrument_name: str | None = None,
        *,
        instrument_type: type | None = None,
        instrument_unit: str | None = None,
        meter_name: str | None = None,
        meter_version: str | None = None,
        meter_schema_url: str | None = None,
        name: str | None = None,
        description: str | None = None,
        aggregation: Aggregation | None = None,
        attribute_keys: Iterable[str] | None = None,
        cardinality_limit: int | None = None,
    ) -> None:
        criteria = (
            instrument_name,
            instrument_type,
            instrument_unit,
            meter_name,
            meter_version,
            meter_schema_url,
        )
        if all(c is None for c in criteria):
            raise ValueError("a view needs at least one instrument selection criterion")
        if name is not None and (instrument_name is None or set(instrument_name) & set("*?")):
            # Renaming every instrument a wildcard selects would give them all one name.
            raise ValueError(
                f"a view that renames (name={name!r}) must select one instrument by its exact "
                f"name, not {instrument_name!r}"
            )
        if cardinality_limit is not None and cardinality_limit < 1:
            raise ValueError(f"cardinality_limit must be at least 1, got {cardinality_limit}")
        self.instrument_name = instrument_name.lower() if instrument_name else None
        self.instrument_type = instrument_type
        self.instrument_unit = instrument_unit
        self.meter_name = meter_name
        self.meter_version = meter_version
        self.meter_schema_url = meter_schema_url
        self.name = name
        self.description = description
        self.aggregation = aggregation
        self.attribute_keys = frozenset(attribute_keys) if attribute_keys is not None else None
        self.cardinality_limit = cardinality_limit

    def matches(
        self,
        instrument_name: str,
        instrument_type: type,
        unit: str,
        meter_name: str,
        meter_version: str | None,
        meter_schema_url: str | None,
    ) -> bool:
        """Whether this view selects the instrument (names compare case-insensitively)."""
        if self.instrument_name is not None and not fnmatch.fnmatchcase(
            instrument_name.lower(), self.instrument_name
        ):
            return False
        if self.instrument_type is not None and not issubclass(
            instrument_type, self.instrument_type
        ):
            return False
        if self.instrument_unit is not None and unit != self.instrument_unit:
            return False
        if self.meter_name is not None and meter_name != self.meter_name:
            return False
        if self.meter_version is not None and meter_version != self.meter_version:
            return False
        return self.meter_schema_url is None or meter_schema_url == self.meter_schema_url

    def __repr__(self) -> str:
        return f"View(instrument_name={self.instrument_name!r}, name={self.name!r})"
