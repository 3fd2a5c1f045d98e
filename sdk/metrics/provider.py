"""MeterProvider and Meter: instruments by scope, and collection for each reader.

Each instrument gets, per reader, a stream per matching view (its default stream when no view
matches). Observable instruments' callbacks run once per collection of each reader; a callback
that raises, or that is still running at the collection's deadline, is reported once and its
observations are skipped, never failing the collection. ``force_flush`` and ``shutdown`` are
bounded by their timeout and the second ``shutdown`` does nothing.
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

from telemetry_run.sdk import forking
from telemetry_run.sdk.diagnostics import Diagnostics, get_diagnostics
from telemetry_run.sdk.metrics.aggregation import (
    Accumulator,
    Aggregation,
    DefaultAggregation,
    DropAggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    ExponentialHistogramAccumulator,
    HistogramAccumulator,
    LastValueAccumulator,
    LastValueAggregation,
    SumAccumulator,
    SumAggregation,
)
from telemetry_run.sdk.metrics.data import (
    InstrumentationScope,
    Metric,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from telemetry_run.sdk.metrics.exemplar import (
    EXEMPLAR_FILTERS,
    AlignedReservoir,
    Reservoir,
    SimpleReservoir,
)
from telemetry_run.sdk.metrics.instruments import (
    Callback,
    CallbackOptions,
    Counter,
    Gauge,
    Histogram,
    Instrument,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    Observation,
    UpDownCounter,
    _Observable,
)
from telemetry_run.sdk.metrics.reader import MetricReader
from telemetry_run.sdk.metrics.stream import AsyncStream, Shape, SyncStream
from telemetry_run.sdk.metrics.view import View
from telemetry_run.sdk.resources import Resource
from telemetry_run.sdk.trace.api import AttributeValue

__all__ = ["DEFAULT_CARDINALITY_LIMIT", "Meter", "MeterProvider"]

#: Series per stream, the overflow series included (the specification's default).
DEFAULT_CARDINALITY_LIMIT: Final = 2000

# The specification's instrument name and unit syntax (compiled by ``re`` on first use).
_NAME: Final = r"[A-Za-z][A-Za-z0-9_./-]{0,254}"
_UNIT_MAX: Final = 63

_I = TypeVar("_I", bound=Instrument)
_EXEMPLAR_MODES: Final = {"always_off": 0, "trace_based": 1, "always_on": 2}


class MeterProvider:
    """The metrics SDK: meters by scope, the readers that collect them, and the views.

    ``exemplar_filter`` is ``trace_based`` (exemplars from measurements inside a sampled span),
    ``always_on`` or ``always_off``; ``cardinality_limit`` caps the series of every stream a
    view does not cap itself. ``clock`` (monotonic seconds) and ``time_ns`` are for tests.
    """

    def __init__(
        self,
        metric_readers: Sequence[MetricReader] = (),
        *,
        resource: Resource | None = None,
        views: Sequence[View] = (),
        exemplar_filter: str = "trace_based",
        cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT,
        diagnostics: Diagnostics | None = None,
        clock: Callable[[], float] = time.monotonic,
        time_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if exemplar_filter not in EXEMPLAR_FILTERS:
            raise ValueError(
                f"exemplar_filter must be one of {', '.join(EXEMPLAR_FILTERS)}, "
                f"got {exemplar_filter!r}"
            )
        if cardinality_limit < 1:
            raise ValueError(f"cardinality_limit must be at least 1, got {cardinality_limit}")
        self.resource = resource if resource is not None else Resource.create()
        self._readers = tuple(metric_readers)
        self._views = tuple(views)
        self._exemplar_mode = _EXEMPLAR_MODES[exemplar_filter]
        self._limit = cardinality_limit
        self._diagnostics = diagnostics or get_diagnostics()
        self._clock = clock
        self._time_ns = time_ns
        self._start_ns = time_ns()
        self._meters: dict[tuple[str, str | None, str | None], Meter] = {}
        self._lock = threading.Lock()
        self._shutdown = False  # shutdown() began: a second call does nothing
        self._closed = False  # shutdown() ended: collections find nothing
        for index, reader in enumerate(self._readers):
            reader._register(self, index)
        _providers.add(self)

    @property
    def readers(self) -> tuple[MetricReader, ...]:
        return self._readers

    @property
    def diagnostics(self) -> Diagnostics:
        return self._diagnostics

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Meter:
        """The meter of one instrumentation scope (the same object for the same scope)."""
        if not name:
            self._diagnostics.warn(
                "meter-name", "get_meter called without a name: the scope is named ''"
            )
            name = ""
        key = (name, version, schema_url)
        with self._lock:
            meter = self._meters.get(key)
            if meter is None:
                scope = InstrumentationScope(
                    name, version, schema_url, dict(attributes) if attributes else None
                )
                meter = self._meters[key] = Meter(self, scope)
            return meter

    def force_flush(self, timeout: float = 30.0) -> bool:
        """Collect and export through every reader within ``timeout`` seconds."""
        deadline = self._clock() + max(timeout, 0.0)
        ok = True
        for reader in self._readers:
            ok = reader.force_flush(deadline=deadline) and ok
        return ok

    def shutdown(self, timeout: float = 30.0) -> bool:
        """Export what is left and stop every reader within ``timeout`` seconds; once. Later
        measurements are ignored."""
        with self._lock:
            if self._shutdown:
                return True
            self._shutdown = True
            meters = list(self._meters.values())
        deadline = self._clock() + max(timeout, 0.0)
        ok = True
        for reader in self._readers:
            ok = reader.shutdown(deadline=deadline) and ok
        with self._lock:
            self._closed = True
        for meter in meters:
            meter._disable()
        return ok

    # -- streams ------------------------------------------------------------------------------

    def _streams_for(self, instrument: Instrument, scope: InstrumentationScope) -> None:
        """Give ``instrument`` its streams, per reader, from the views that select it."""
        kind = type(instrument)
        views = [
            view
            for view in self._views
            if view.matches(
                instrument.name, kind, instrument.unit, scope.name, scope.version, scope.schema_url
            )
        ]
        per_reader: list[list[SyncStream | AsyncStream]] = []
        for index, reader in enumerate(self._readers):
            streams: list[SyncStream | AsyncStream] = []
            selected: list[View | None] = [*views] or [None]
            for view in selected:
                stream = self._stream(instrument, reader, view)
                if stream is not None:
                    stream.reader_index = index
                    streams.append(stream)
            per_reader.append(streams)
        if isinstance(instrument, _Observable):
            instrument._async_streams = per_reader  # type: ignore[assignment]
        else:
            instrument._streams = tuple(s for streams in per_reader for s in streams)  # type: ignore[misc]

    def _stream(
        self, instrument: Instrument, reader: MetricReader, view: View | None
    ) -> SyncStream | AsyncStream | None:
        aggregation: Aggregation = (view.aggregation if view else None) or DefaultAggregation()
        if isinstance(aggregation, DropAggregation):
            return None
        observable = isinstance(instrument, _Observable)
        if isinstance(aggregation, DefaultAggregation) or (
            observable and not isinstance(aggregation, SumAggregation | LastValueAggregation)
        ):
            if not isinstance(aggregation, DefaultAggregation):
                self._diagnostics.warn(
                    f"view-aggregation:{instrument.name}",
                    "a view asks for %r on the observable instrument %s, which only sums or "
                    "keeps last values: its default aggregation is used",
                    aggregation,
                    instrument.name,
                )
            aggregation = self._default_aggregation(instrument, reader)
        make, shape = self._accumulators(aggregation)
        monotonic = instrument._monotonic and shape == Shape.SUM
        common: dict[str, object] = {
            "name": (view.name if view and view.name else instrument.name),
            "description": (
                view.description
                if view and view.description is not None
                else instrument.description
            ),
            "unit": instrument.unit,
            "shape": shape,
            "temporality": reader.temporality[type(instrument)],
            "monotonic": monotonic,
            "attribute_keys": view.attribute_keys if view else None,
            "limit": (view.cardinality_limit if view and view.cardinality_limit else self._limit),
            "diagnostics": self._diagnostics,
            "start_ns": self._time_ns(),
        }
        if observable:
            return AsyncStream(**common)
        return SyncStream(
            make=make, exemplar_mode=self._exemplar_mode, time_ns=self._time_ns, **common
        )

    def _default_aggregation(self, instrument: Instrument, reader: MetricReader) -> Aggregation:
        if isinstance(instrument, Histogram):
            if reader.default_histogram == "base2_exponential_bucket_histogram":
                return ExponentialBucketHistogramAggregation()
            return ExplicitBucketHistogramAggregation(instrument.advised_boundaries)
        if isinstance(instrument, Gauge | ObservableGauge):
            return LastValueAggregation()
        return SumAggregation()

    def _accumulators(self, aggregation: Aggregation) -> tuple[Callable[[int], Accumulator], str]:
        """The accumulator factory (start time -> accumulator) and the point shape."""
        exemplars = self._exemplar_mode != 0
        simple: Callable[[], Reservoir] | None = SimpleReservoir if exemplars else None

        if isinstance(aggregation, ExplicitBucketHistogramAggregation):
            bounds = aggregation.boundaries
            aligned: Callable[[], Reservoir] | None = (
                (lambda: AlignedReservoir(len(bounds) + 1)) if exemplars else None
            )
            return (lambda start: HistogramAccumulator(start, aligned, bounds)), Shape.HISTOGRAM
        if isinstance(aggregation, ExponentialBucketHistogramAggregation):
            size, scale = aggregation.max_size, aggregation.max_scale
            return (
                lambda start: ExponentialHistogramAccumulator(start, simple, size, scale)
            ), Shape.EXPONENTIAL
        if isinstance(aggregation, LastValueAggregation):
            return (lambda start: LastValueAccumulator(start, simple)), Shape.GAUGE
        return (lambda start: SumAccumulator(start, simple)), Shape.SUM

    # -- collection ---------------------------------------------------------------------------

    def _collect(self, reader_index: int, deadline: float) -> MetricsData:
        with self._lock:
            if self._closed:
                return MetricsData(())
            meters = list(self._meters.values())
        now = self._time_ns()
        scopes = []
        for meter in meters:
            metrics = meter._collect(reader_index, deadline, now)
            if metrics:
                scopes.append(ScopeMetrics(meter.scope, metrics, meter.scope.schema_url or ""))
        if not scopes:
            return MetricsData(())
        return MetricsData((ResourceMetrics(self.resource, scopes, self.resource.schema_url),))

    def _observe(self, instrument: _Observable, deadline: float) -> list[Observation]:
        """Every callback's observations; one that raises or overruns is reported and skipped."""
        observations: list[Observation] = []
        for callback in list(instrument.callbacks):
            name = getattr(callback, "__qualname__", None) or repr(callback)
            left = deadline - self._clock()
            if left <= 0:
                self._callback_skipped(instrument, name, "the collection's deadline had passed")
                continue
            try:
                observed = [Observation(*o) for o in callback(CallbackOptions(left * 1000))]
            except Exception as exc:  # noqa: BLE001  # the app's callback: never fails collection
                self._callback_skipped(instrument, name, f"it raised {type(exc).__name__}: {exc}")
                continue
            if self._clock() > deadline:
                self._callback_skipped(instrument, name, "it ran past the collection's deadline")
                continue
            observations.extend(observed)
        return observations

    def _callback_skipped(self, instrument: Instrument, name: str, why: str) -> None:
        self._diagnostics.warn(
            f"metric-callback:{instrument.name}:{name}",
            "callback %s of %s %s was skipped: %s; the other callbacks were collected",
            name,
            type(instrument).__name__,
            instrument.name,
            why,
        )


class Meter:
    """Creates the instruments of one instrumentation scope."""

    def __init__(self, provider: MeterProvider, scope: InstrumentationScope) -> None:
        self._provider = provider
        self.scope = scope
        self._instruments: dict[str, Instrument] = {}
        self._all: list[Instrument] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.scope.name

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        return self._create(Counter, name, unit, description)

    def create_up_down_counter(
        self, name: str, unit: str = "", description: str = ""
    ) -> UpDownCounter:
        return self._create(UpDownCounter, name, unit, description)

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> Histogram:
        advised = explicit_bucket_boundaries_advisory
        if advised is not None:
            try:
                ExplicitBucketHistogramAggregation(advised)
            except (TypeError, ValueError) as exc:
                self._provider._diagnostics.warn(
                    f"metric-advice:{name}",
                    "histogram %s: the advised bucket boundaries are ignored (%s)",
                    name,
                    str(exc),
                )
                advised = None
        return self._create(Histogram, name, unit, description, boundaries=advised)

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Gauge:
        return self._create(Gauge, name, unit, description)

    def create_observable_counter(
        self, name: str, callbacks: Sequence[Callback] = (), unit: str = "", description: str = ""
    ) -> ObservableCounter:
        return self._create(ObservableCounter, name, unit, description, callbacks=callbacks)

    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[Callback] = (), unit: str = "", description: str = ""
    ) -> ObservableUpDownCounter:
        return self._create(ObservableUpDownCounter, name, unit, description, callbacks=callbacks)

    def create_observable_gauge(
        self, name: str, callbacks: Sequence[Callback] = (), unit: str = "", description: str = ""
    ) -> ObservableGauge:
        return self._create(ObservableGauge, name, unit, description, callbacks=callbacks)

    def _create(
        self, kind: type[_I], name: str, unit: str, description: str, **extra: object
    ) -> _I:
        diagnostics = self._provider._diagnostics
        unit = unit or ""
        description = description or ""
        instrument = kind(name, unit, description, diagnostics, **extra)
        problem = _invalid(name, unit)
        if problem:
            diagnostics.warn(
                f"metric-invalid:{name!r}:{unit!r}",
                "%s %r is not created (%s): it records nothing",
                kind.__name__,
                name,
                problem,
            )
            return instrument  # no streams: every measurement is ignored
        with self._lock:
            existing = self._instruments.get(name.lower())
            if existing is not None:
                if (type(existing), existing.name, existing.unit, existing.description) == (
                    kind,
                    name,
                    unit,
                    description,
                ):
                    if isinstance(existing, _Observable):
                        existing.callbacks.extend(extra.get("callbacks", ()))  # type: ignore[arg-type]
                    return existing  # type: ignore[return-value]
                # The specification: a working instrument, both streams exported, a warning.
                diagnostics.warn(
                    f"metric-duplicate:{self.scope.name}:{name.lower()}",
                    "meter %r: %s %r conflicts with the %s %r (unit %r, description %r) "
                    "created earlier: both are exported, under the same name; use a view to "
                    "rename one",
                    self.scope.name,
                    kind.__name__,
                    name,
                    type(existing).__name__,
                    existing.name,
                    existing.unit,
                    existing.description,
                )
            else:
                self._instruments[name.lower()] = instrument
            if self._provider._closed:
                return instrument
            self._provider._streams_for(instrument, self.scope)
            self._all.append(instrument)
        return instrument

    def _collect(self, reader_index: int, deadline: float, now: int) -> list[Metric]:
        with self._lock:
            instruments = list(self._all)
        provider = self._provider
        metrics: list[Metric] = []
        for instrument in instruments:
            if isinstance(instrument, _Observable):
                streams = instrument._async_streams[reader_index]
                if not streams:
                    continue
                observed = [
                    (o.value, o.attributes) for o in provider._observe(instrument, deadline)
                ]
                for async_stream in streams:
                    metric = async_stream.collect_observed(observed, now)
                    if metric is not None:
                        metrics.append(metric)
            else:
                for sync_stream in instrument._streams:
                    if sync_stream.reader_index == reader_index:
                        metric = sync_stream.collect(now)
                        if metric is not None:
                            metrics.append(metric)
        return metrics

    def _disable(self) -> None:
        with self._lock:
            for instrument in self._all:
                instrument._streams = ()
                if isinstance(instrument, _Observable):
                    instrument.callbacks = []


# A forked child (a gunicorn or multiprocessing worker) must not report its parent's counts a
# second time, nor wait on a lock or a reader thread that only exists in the parent.
_providers: weakref.WeakSet[MeterProvider] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    pid = os.getpid()
    for provider in list(_providers):
        provider._lock = threading.Lock()
        if "process.pid" in provider.resource.attributes:  # the child's points are its own
            provider.resource = provider.resource.merge(Resource({"process.pid": pid}))
        now = provider._time_ns()
        for meter in list(provider._meters.values()):
            meter._lock = threading.Lock()
            for instrument in meter._all:
                for stream in instrument._streams:
                    stream.after_fork_in_child(now)
                if isinstance(instrument, _Observable):
                    for streams in instrument._async_streams:
                        for async_stream in streams:
                            async_stream.after_fork_in_child(now)
        for reader in provider._readers:
            reader._after_fork_in_child()


forking.register(_after_fork_in_child)


def _invalid(name: str, unit: str) -> str:
    """Why the specification refuses this name or unit; "" when both are valid."""
    if not re.fullmatch(_NAME, name):
        return (
            "an instrument name starts with a letter and has at most 255 letters, digits, "
            "'_', '.', '/' and '-'"
        )
    if len(unit) > _UNIT_MAX or not unit.isascii():
        return "a unit has at most 63 ASCII characters"
    return ""
