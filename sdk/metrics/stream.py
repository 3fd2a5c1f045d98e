"""Metric streams: the series of one instrument for one reader, under one lock.

A synchronous stream keeps an accumulator per attribute set. Delta streams hand their series
over at each collection and start empty, so a series that goes quiet costs nothing after the
next collection; cumulative ones keep theirs. An asynchronous stream turns each collection's
observations into points: cumulative values as observed (a drop in a monotonic counter is a
reset, with a new start time), delta ones as the difference from the previous observation.

Beyond ``limit`` series (the overflow series included) new attribute sets are folded into one
series marked ``otel.metric.overflow=true``, with one diagnostic per stream.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from telemetry_run.sdk.context import _span_get
from telemetry_run.sdk.diagnostics import Diagnostics
from telemetry_run.sdk.metrics.aggregation import Accumulator
from telemetry_run.sdk.metrics.attributes import OVERFLOW_KEY, AttributeSet, Key, freeze
from telemetry_run.sdk.metrics.data import (
    AggregationTemporality,
    DataT,
    Exemplar,
    ExponentialHistogram,
    Gauge,
    Histogram,
    Metric,
    NumberDataPoint,
    Sum,
)
from telemetry_run.sdk.trace.api import AttributeValue, Span

__all__ = ["ALWAYS_ON", "TRACE_BASED", "AsyncStream", "Shape", "SyncStream"]

#: Exemplar filter modes, as a stream tests them on the hot path.
ALWAYS_OFF: Final = 0
TRACE_BASED: Final = 1
ALWAYS_ON: Final = 2

#: Cached attribute dicts per stream before the cache starts over (a bound on its memory).
_CACHE_LIMIT: Final = 4096

_CUMULATIVE = AggregationTemporality.CUMULATIVE
_DELTA = AggregationTemporality.DELTA


class Shape:
    """What a stream's points become: a sum (monotonic or not), a gauge or a histogram."""

    SUM: Final = "sum"
    GAUGE: Final = "gauge"
    HISTOGRAM: Final = "histogram"
    EXPONENTIAL: Final = "exponential_histogram"


class _Stream:
    def __init__(
        self,
        *,
        name: str,
        description: str,
        unit: str,
        shape: str,
        temporality: AggregationTemporality,
        monotonic: bool,
        attribute_keys: frozenset[str] | None,
        limit: int,
        diagnostics: Diagnostics,
        start_ns: int,
    ) -> None:
        self.name = name
        self.description = description
        self.unit = unit
        self.shape = shape
        self.temporality = temporality
        self.monotonic = monotonic
        self._allowed = attribute_keys
        self._limit = limit
        self._diagnostics = diagnostics
        self._last_collection = start_ns
        self._lock = threading.Lock()
        #: Which of the provider's readers collects this stream.
        self.reader_index = 0

    def _key(
        self, attributes: Mapping[str, AttributeValue] | None, known: Mapping[Key, object]
    ) -> Key:
        """The series key for ``attributes``: filtered, then folded into the overflow series
        when the stream is full."""
        allowed = self._allowed
        if allowed is not None and attributes:
            key = freeze({k: v for k, v in attributes.items() if k in allowed})
        elif isinstance(attributes, AttributeSet):
            key = attributes.key
        else:
            key = freeze(attributes)
        if key in known or len(known) < self._limit - 1:
            return key
        self._diagnostics.warn(
            f"metric-overflow:{self.name}",
            "metric %s has more than %d attribute sets (its cardinality limit): further ones "
            "are counted in one series with otel.metric.overflow=true; drop high-cardinality "
            "attributes with a view's attribute_keys",
            self.name,
            self._limit,
        )
        return OVERFLOW_KEY

    def after_fork_in_child(self, now: int) -> None:
        """A forked child starts its own series: the parent's counts stay the parent's."""
        self._lock = threading.Lock()
        self._last_collection = now
        self._forget()

    def _forget(self) -> None:
        raise NotImplementedError

    def _metric(self, points: Sequence[object]) -> Metric | None:
        if not points:
            return None
        data: DataT
        if self.shape == Shape.SUM:
            data = Sum(points, self.temporality, self.monotonic)  # type: ignore[arg-type]
        elif self.shape == Shape.GAUGE:
            data = Gauge(points)  # type: ignore[arg-type]
        elif self.shape == Shape.HISTOGRAM:
            data = Histogram(points, self.temporality)  # type: ignore[arg-type]
        else:
            data = ExponentialHistogram(points, self.temporality)  # type: ignore[arg-type]
        return Metric(self.name, self.description, self.unit, data)


class SyncStream(_Stream):
    """The stream of a synchronous instrument (Counter, UpDownCounter, Histogram, Gauge)."""

    def __init__(
        self,
        *,
        make: Callable[[int], Accumulator],
        exemplar_mode: int,
        time_ns: Callable[[], int],
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._make = make
        self._exemplar_mode = exemplar_mode
        self._time_ns = time_ns
        self._series: dict[Key, Accumulator] = {}
        # id(attributes) -> (a copy of them, their accumulator): the hot path's shortcut.
        self._cache: dict[int, tuple[object, Accumulator]] = {}
        self._delta = self.temporality is _DELTA and self.shape != Shape.GAUGE

    def record(self, value: float, attributes: Mapping[str, AttributeValue] | None) -> None:
        with self._lock:
            entry = self._cache.get(id(attributes))
            if entry is not None and (entry[0] is attributes or entry[0] == attributes):
                accumulator = entry[1]
            else:
                accumulator = self._series_for(attributes)
            accumulator.record(value)
            mode = self._exemplar_mode
            if mode:
                span = _span_get()
                if mode == ALWAYS_ON or (
                    isinstance(span, Span) and span.get_span_context().trace_flags & 1
                ):
                    accumulator.offer(value, self._exemplar(value, attributes, span))

    def _series_for(self, attributes: Mapping[str, AttributeValue] | None) -> Accumulator:
        key = self._key(attributes, self._series)
        accumulator = self._series.get(key)
        if accumulator is None:
            accumulator = self._series[key] = self._make(self._time_ns())
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        kept = (
            attributes
            if attributes is None or isinstance(attributes, AttributeSet)
            else dict(attributes)
        )
        self._cache[id(attributes)] = (kept, accumulator)
        return accumulator

    def _exemplar(
        self, value: float, attributes: Mapping[str, AttributeValue] | None, span: object
    ) -> Exemplar:
        filtered: dict[str, AttributeValue] = {}
        if self._allowed is not None and attributes:
            filtered = {k: v for k, v in attributes.items() if k not in self._allowed}
        trace_id = span_id = 0
        if isinstance(span, Span):
            context = span.get_span_context()
            if context.is_valid:
                trace_id, span_id = context.trace_id, context.span_id
        return Exemplar(filtered, value, self._time_ns(), span_id, trace_id)

    def collect(self, now: int) -> Metric | None:
        with self._lock:
            series = self._series
            start = self._last_collection
            self._last_collection = now
            if self._delta:
                # Handed over: the next interval starts empty, and quiet series are gone.
                self._series = {}
                self._cache.clear()
                points = [acc.point(_attributes(key), start, now) for key, acc in series.items()]
            else:
                points = [
                    acc.point(_attributes(key), acc.start, now) for key, acc in series.items()
                ]
        return self._metric(points)

    def _forget(self) -> None:
        self._series = {}
        self._cache = {}

    def series_count(self) -> int:
        return len(self._series)


class AsyncStream(_Stream):
    """The stream of an observable instrument: fed each collection's observations."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._previous: dict[Key, float] = {}
        self._starts: dict[Key, int] = {}

    def _forget(self) -> None:
        self._previous = {}
        self._starts = {}

    def collect_observed(
        self, observations: Iterable[tuple[float, Mapping[str, AttributeValue] | None]], now: int
    ) -> Metric | None:
        with self._lock:
            observed: dict[Key, float] = {}
            for value, attributes in observations:
                key = self._key(attributes, observed)
                if self.shape == Shape.GAUGE:
                    observed[key] = value
                else:
                    # Attribute sets a view merged (or the overflow series) add up.
                    observed[key] = observed.get(key, 0) + value
            last = self._last_collection
            self._last_collection = now
            points = []
            starts: dict[Key, int] = {}
            for key, value in observed.items():
                previous = self._previous.get(key)
                start = self._starts.get(key, last)
                reset = self.monotonic and previous is not None and value < previous
                if reset:
                    start = last  # the counter restarted during the last interval
                starts[key] = start
                if self.shape == Shape.GAUGE:
                    point_value, point_start = value, last
                elif self.temporality is _DELTA:
                    base = 0 if previous is None or reset else previous
                    point_value, point_start = value - base, last
                else:
                    point_value, point_start = value, start
                points.append(NumberDataPoint(_attributes(key), point_start, now, point_value))
            # Series not observed this time are forgotten (their memory too).
            self._previous = observed
            self._starts = starts
        return self._metric(points)


def _attributes(key: Key) -> dict[str, AttributeValue]:
    """A point's attributes from its series key (a fresh dict: exporters may keep it)."""
    return dict(key)  # type: ignore[arg-type]  # keys hold only attribute values
