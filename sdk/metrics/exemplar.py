"""Exemplars: a few measurements kept with the span they were recorded in, so that a latency
spike on a dashboard links to its trace.

The filter decides which measurements may become exemplars (``OTEL_METRICS_EXEMPLAR_FILTER``:
``trace_based``, the default, only those recorded inside a sampled span); a reservoir per series
decides which are kept until the next collection: one per bucket for explicit-bucket
histograms (the last one in each), a small uniform sample otherwise.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

from telemetry_run.sdk.metrics.data import Exemplar

__all__ = ["EXEMPLAR_FILTERS", "AlignedReservoir", "Reservoir", "SimpleReservoir"]

#: The filter names, as ``OTEL_METRICS_EXEMPLAR_FILTER`` spells them.
EXEMPLAR_FILTERS: Final = ("trace_based", "always_on", "always_off")

#: How many exemplars a series that is not an explicit-bucket histogram keeps per collection.
SIMPLE_RESERVOIR_SIZE: Final = 1


class Reservoir:
    """Keeps some of the exemplars offered between two collections."""

    def offer(self, value: float, exemplar: Exemplar, bucket: int) -> None:
        raise NotImplementedError

    def take(self) -> Sequence[Exemplar]:
        """The exemplars kept since the last take; the reservoir starts empty again."""
        raise NotImplementedError


class SimpleReservoir(Reservoir):
    """A uniform sample of ``size`` (reservoir sampling: every measurement equally likely)."""

    __slots__ = ("_kept", "_seen", "_size")

    def __init__(self, size: int = SIMPLE_RESERVOIR_SIZE) -> None:
        self._size = size
        self._kept: list[Exemplar] = []
        self._seen = 0

    def offer(self, value: float, exemplar: Exemplar, bucket: int) -> None:
        self._seen += 1
        if len(self._kept) < self._size:
            self._kept.append(exemplar)
            return
        slot = random.randrange(self._seen)
        if slot < self._size:
            self._kept[slot] = exemplar

    def take(self) -> Sequence[Exemplar]:
        kept, self._kept, self._seen = self._kept, [], 0
        return tuple(kept)


class AlignedReservoir(Reservoir):
    """The last exemplar of each histogram bucket."""

    __slots__ = ("_slots",)

    def __init__(self, buckets: int) -> None:
        self._slots: list[Exemplar | None] = [None] * buckets

    def offer(self, value: float, exemplar: Exemplar, bucket: int) -> None:
        self._slots[bucket] = exemplar

    def take(self) -> Sequence[Exemplar]:
        kept = tuple(e for e in self._slots if e is not None)
        self._slots = [None] * len(self._slots)
        return kept
