"""Aggregations: what a view asks for, and the per-series accumulators that implement it.

An ``Aggregation`` is configuration (what ``View(aggregation=...)`` takes); each makes one
accumulator per attribute set, which the stream updates under its own lock (so an accumulator
never locks) and turns into a data point at collection.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Final

from telemetry_run.sdk.metrics.data import (
    Attributes,
    Exemplar,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    NumberDataPoint,
)
from telemetry_run.sdk.metrics.exemplar import Reservoir

__all__ = [
    "DEFAULT_BOUNDARIES",
    "Aggregation",
    "DefaultAggregation",
    "DropAggregation",
    "ExplicitBucketHistogramAggregation",
    "ExponentialBucketHistogramAggregation",
    "LastValueAggregation",
    "SumAggregation",
]

#: The specification's default explicit bucket boundaries.
DEFAULT_BOUNDARIES: Final = (
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
    7500.0, 10000.0,
)  # fmt: skip


class Aggregation:
    """Base of the aggregations a view may name."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DefaultAggregation(Aggregation):
    """The instrument kind's own: sum for counters, last value for gauges, a histogram for
    histograms (explicit buckets unless the reader prefers exponential ones)."""


class DropAggregation(Aggregation):
    """No stream at all: measurements are ignored (the cheapest way to silence a metric)."""


class SumAggregation(Aggregation):
    """The arithmetic sum of the measurements."""


class LastValueAggregation(Aggregation):
    """The last measurement (a gauge)."""


class ExplicitBucketHistogramAggregation(Aggregation):
    """Counts per bucket ``(b[i-1], b[i]]`` plus count, sum, min and max."""

    def __init__(
        self, boundaries: Sequence[float] | None = None, record_min_max: bool = True
    ) -> None:
        bounds = tuple(float(b) for b in (DEFAULT_BOUNDARIES if boundaries is None else boundaries))
        if any(math.isnan(b) or math.isinf(b) for b in bounds) or any(
            a >= b for a, b in itertools.pairwise(bounds)
        ):
            raise ValueError(f"bucket boundaries must be finite and increasing, got {bounds}")
        self.boundaries = bounds
        self.record_min_max = record_min_max

    def __repr__(self) -> str:
        return f"ExplicitBucketHistogramAggregation({list(self.boundaries)})"


class ExponentialBucketHistogramAggregation(Aggregation):
    """Base-2 exponential buckets: at most ``max_size`` per sign, the finest scale that fits."""

    def __init__(self, max_size: int = 160, max_scale: int = 20) -> None:
        if max_size < 2:
            raise ValueError(f"max_size must be at least 2, got {max_size}")
        if not -10 <= max_scale <= 20:
            raise ValueError(f"max_scale must be between -10 and 20, got {max_scale}")
        self.max_size = max_size
        self.max_scale = max_scale


# -- accumulators ---------------------------------------------------------------------------


class Accumulator:
    """One series' state. ``start`` is when the series began (nanoseconds)."""

    __slots__ = ("_make_reservoir", "reservoir", "start")

    def __init__(self, start: int, reservoir: Callable[[], Reservoir] | None) -> None:
        self.start = start
        # Made at the first exemplar: a series never recorded in a sampled span has none.
        self._make_reservoir = reservoir
        self.reservoir: Reservoir | None = None

    def record(self, value: float) -> None:
        raise NotImplementedError

    def point(
        self, attributes: Attributes, start: int, now: int
    ) -> NumberDataPoint | HistogramDataPoint | ExponentialHistogramDataPoint:
        raise NotImplementedError

    def offer(self, value: float, exemplar: Exemplar) -> None:
        reservoir = self._reservoir()
        if reservoir is not None:
            reservoir.offer(value, exemplar, 0)

    def _reservoir(self) -> Reservoir | None:
        reservoir = self.reservoir
        if reservoir is None and self._make_reservoir is not None:
            reservoir = self.reservoir = self._make_reservoir()
        return reservoir

    def _exemplars(self) -> Sequence[Exemplar]:
        return self.reservoir.take() if self.reservoir is not None else ()


class SumAccumulator(Accumulator):
    __slots__ = ("value",)

    def __init__(self, start: int, reservoir: Callable[[], Reservoir] | None) -> None:
        super().__init__(start, reservoir)
        self.value: float = 0

    def record(self, value: float) -> None:
        self.value += value

    def point(self, attributes: Attributes, start: int, now: int) -> NumberDataPoint:
        return NumberDataPoint(attributes, start, now, self.value, self._exemplars())


class LastValueAccumulator(Accumulator):
    __slots__ = ("value",)

    def __init__(self, start: int, reservoir: Callable[[], Reservoir] | None) -> None:
        super().__init__(start, reservoir)
        self.value: float = 0

    def record(self, value: float) -> None:
        self.value = value

    def point(self, attributes: Attributes, start: int, now: int) -> NumberDataPoint:
        return NumberDataPoint(attributes, start, now, self.value, self._exemplars())


class HistogramAccumulator(Accumulator):
    __slots__ = ("boundaries", "count", "counts", "max", "min", "sum")

    def __init__(
        self, start: int, reservoir: Callable[[], Reservoir] | None, boundaries: tuple[float, ...]
    ) -> None:
        super().__init__(start, reservoir)
        self.boundaries = boundaries
        self.counts = [0] * (len(boundaries) + 1)
        self.count = 0
        self.sum: float = 0
        self.min = math.inf
        self.max = -math.inf

    def record(self, value: float) -> None:
        self.counts[bisect_left(self.boundaries, value)] += 1
        self.count += 1
        self.sum += value
        if value < self.min:  # noqa: PLR1730  # hot path: a comparison costs less than a call
            self.min = value
        if value > self.max:  # noqa: PLR1730  # hot path: a comparison costs less than a call
            self.max = value

    def offer(self, value: float, exemplar: Exemplar) -> None:
        reservoir = self._reservoir()
        if reservoir is not None:
            reservoir.offer(value, exemplar, bisect_left(self.boundaries, value))

    def point(self, attributes: Attributes, start: int, now: int) -> HistogramDataPoint:
        return HistogramDataPoint(
            attributes,
            start,
            now,
            self.count,
            self.sum,
            tuple(self.counts),
            self.boundaries,
            self.min,
            self.max,
            self._exemplars(),
        )


_LOG2_E: Final = 1 / math.log(2)


def exponential_index(value: float, scale: int) -> int:
    """The bucket of ``value`` (> 0) at ``scale``: bucket i holds (2**(i/2**scale),
    2**((i+1)/2**scale)]; exact powers of two land in the bucket they close."""
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, 0.5 <= m < 1
    if mantissa == 0.5:  # an exact power of two: 2**(exponent-1), the top of its bucket
        return ((exponent - 1) << scale) - 1 if scale > 0 else (exponent - 2) >> -scale
    if scale <= 0:
        return (exponent - 1) >> -scale
    return math.floor(math.log(value) * _LOG2_E * (1 << scale))


class _Buckets:
    """The counts of one sign: index -> count, at the histogram's scale."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def span_after(self, index: int, shift: int) -> int:
        if not self.counts:
            return 1
        low, high = min(self.counts), max(self.counts)
        low, high = min(low, index), max(high, index)
        return (high >> shift) - (low >> shift) + 1

    def downscale(self, shift: int) -> None:
        merged: dict[int, int] = {}
        for index, count in self.counts.items():
            merged[index >> shift] = merged.get(index >> shift, 0) + count
        self.counts = merged

    def dense(self) -> tuple[int, tuple[int, ...]]:
        if not self.counts:
            return 0, ()
        low, high = min(self.counts), max(self.counts)
        return low, tuple(self.counts.get(i, 0) for i in range(low, high + 1))


class ExponentialHistogramAccumulator(Accumulator):
    __slots__ = ("count", "max", "max_size", "min", "negative", "positive", "scale", "sum", "zero")

    def __init__(
        self, start: int, reservoir: Callable[[], Reservoir] | None, max_size: int, max_scale: int
    ) -> None:
        super().__init__(start, reservoir)
        self.max_size = max_size
        self.scale = max_scale
        self.positive = _Buckets()
        self.negative = _Buckets()
        self.zero = 0
        self.count = 0
        self.sum: float = 0
        self.min = math.inf
        self.max = -math.inf

    def record(self, value: float) -> None:
        if math.isnan(value) or math.isinf(value):
            return
        self.count += 1
        self.sum += value
        if value < self.min:  # noqa: PLR1730  # hot path: a comparison costs less than a call
            self.min = value
        if value > self.max:  # noqa: PLR1730  # hot path: a comparison costs less than a call
            self.max = value
        if value == 0:
            self.zero += 1
            return
        buckets = self.positive if value > 0 else self.negative
        index = exponential_index(abs(value), self.scale)
        shift = 0
        while buckets.span_after(index, shift) > self.max_size:
            shift += 1
        if shift:
            # Both signs share one scale: coarsen both.
            self.positive.downscale(shift)
            self.negative.downscale(shift)
            self.scale -= shift
            index >>= shift
        buckets.counts[index] = buckets.counts.get(index, 0) + 1

    def point(self, attributes: Attributes, start: int, now: int) -> ExponentialHistogramDataPoint:
        positive_offset, positive = self.positive.dense()
        negative_offset, negative = self.negative.dense()
        return ExponentialHistogramDataPoint(
            attributes,
            start,
            now,
            self.count,
            self.sum,
            self.scale,
            self.zero,
            positive_offset,
            positive,
            negative_offset,
            negative,
            self.min,
            self.max,
            self._exemplars(),
        )
