"""Metric readers: what collects the streams, and when.

``InMemoryMetricReader`` collects when asked (tests, pull exporters);
``PeriodicExportingMetricReader`` collects every ``interval`` seconds on a daemon thread and
hands the result to a ``MetricExporter`` within ``timeout``. Each reader has its own
temporality per instrument kind (``temporality_preference``: the specification's
``cumulative``, ``delta`` and ``lowmemory`` mappings) and its own streams.

Every data point handed to an exporter is counted: exported, or dropped when the export
failed (``Diagnostics.metric_points_exported`` / ``metric_points_dropped``, on the exit line).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from telemetry_run.sdk.diagnostics import Diagnostics, get_diagnostics
from telemetry_run.sdk.exporters import ExportResult
from telemetry_run.sdk.metrics.data import AggregationTemporality, MetricsData
from telemetry_run.sdk.metrics.instruments import (
    Counter,
    Gauge,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)

if TYPE_CHECKING:
    from telemetry_run.sdk.metrics.provider import MeterProvider

__all__ = [
    "HISTOGRAM_AGGREGATIONS",
    "TEMPORALITY_PREFERENCES",
    "InMemoryMetricReader",
    "MetricExporter",
    "MetricReader",
    "PeriodicExportingMetricReader",
    "temporality_for",
]

_C = AggregationTemporality.CUMULATIVE
_D = AggregationTemporality.DELTA

#: ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``: the temporality of each instrument
#: kind (gauges have none: their points are last values).
_PRESETS: Final[dict[str, dict[type, AggregationTemporality]]] = {
    "cumulative": {},
    "delta": {Counter: _D, ObservableCounter: _D, Histogram: _D},
    "lowmemory": {Counter: _D, Histogram: _D},
}
TEMPORALITY_PREFERENCES: Final = tuple(_PRESETS)
#: ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION``'s values.
HISTOGRAM_AGGREGATIONS: Final = (
    "explicit_bucket_histogram",
    "base2_exponential_bucket_histogram",
)
_KINDS: Final = (
    Counter,
    UpDownCounter,
    Histogram,
    Gauge,
    ObservableCounter,
    ObservableUpDownCounter,
    ObservableGauge,
)


def temporality_for(preference: str) -> dict[type, AggregationTemporality]:
    """The temporality of every instrument kind under ``preference`` (case-insensitive)."""
    preset = _PRESETS.get(preference.strip().lower())
    if preset is None:
        raise ValueError(
            f"temporality preference must be one of {', '.join(_PRESETS)}, got {preference!r}"
        )
    return {kind: preset.get(kind, _C) for kind in _KINDS}


@runtime_checkable
class MetricExporter(Protocol):
    def export(self, metrics: MetricsData, *, deadline: float) -> ExportResult:
        """Send ``metrics``; return before ``deadline``. Never raises for transport errors."""
        ...

    def force_flush(self, *, deadline: float) -> bool: ...

    def shutdown(self, *, deadline: float) -> None: ...


class MetricReader:
    """Collects the streams of the provider it is registered with."""

    def __init__(
        self,
        *,
        temporality_preference: str | Mapping[type, AggregationTemporality] = "cumulative",
        default_histogram: str = "explicit_bucket_histogram",
        diagnostics: Diagnostics | None = None,
    ) -> None:
        if isinstance(temporality_preference, str):
            self.temporality = temporality_for(temporality_preference)
        else:
            self.temporality = {kind: temporality_preference.get(kind, _C) for kind in _KINDS}
        if default_histogram not in HISTOGRAM_AGGREGATIONS:
            raise ValueError(
                f"default_histogram must be one of {', '.join(HISTOGRAM_AGGREGATIONS)}, "
                f"got {default_histogram!r}"
            )
        self.default_histogram = default_histogram
        self._diagnostics = diagnostics or get_diagnostics()
        self._provider: MeterProvider | None = None
        self._index = -1
        self._shutdown = False
        self._collect_lock = threading.Lock()

    def _register(self, provider: MeterProvider, index: int) -> None:
        if self._provider is not None:
            raise ValueError(f"{type(self).__name__} is already registered with a MeterProvider")
        self._provider = provider
        self._index = index

    def collect(self, timeout: float = 10.0) -> MetricsData:
        """Every stream's points now; callbacks get ``timeout`` seconds in all."""
        provider = self._provider
        clock = provider._clock if provider is not None else time.monotonic
        return self._collect(clock() + max(timeout, 0.0))

    def _collect(self, deadline: float) -> MetricsData:
        provider = self._provider
        if provider is None or self._shutdown:
            return MetricsData(())
        with self._collect_lock:  # one collection at a time: delta intervals must not overlap
            return provider._collect(self._index, deadline)

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> bool:
        self._shutdown = True
        return True

    def _after_fork_in_child(self) -> None:
        """Fresh locks in a forked child (no waiting, no logging: see ``forking``)."""
        self._collect_lock = threading.Lock()


class InMemoryMetricReader(MetricReader):
    """A reader that collects only when asked: ``get_metrics_data()`` (tests, the console)."""

    def get_metrics_data(self, timeout: float = 10.0) -> MetricsData:
        return self.collect(timeout)


#: The specification's defaults: OTEL_METRIC_EXPORT_INTERVAL and OTEL_METRIC_EXPORT_TIMEOUT.
DEFAULT_INTERVAL: Final = 60.0
DEFAULT_TIMEOUT: Final = 30.0


class PeriodicExportingMetricReader(MetricReader):
    """Collects and exports every ``interval`` seconds; each export gets ``timeout`` seconds
    (callbacks included). ``force_flush`` and ``shutdown`` export at once within their
    deadline; after ``shutdown`` the exporter is shut down too."""

    def __init__(
        self,
        exporter: MetricExporter,
        *,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        temporality_preference: str | Mapping[type, AggregationTemporality] | None = None,
        default_histogram: str | None = None,
        diagnostics: Diagnostics | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        # An OTLP exporter carries the preference its variables set; an explicit one wins.
        preference = temporality_preference or str(
            getattr(exporter, "temporality_preference", "cumulative")
        )
        histogram = default_histogram or str(
            getattr(exporter, "default_histogram", "explicit_bucket_histogram")
        )
        super().__init__(
            temporality_preference=preference,
            default_histogram=histogram,
            diagnostics=diagnostics,
        )
        self.exporter = exporter
        self.interval = interval
        self.timeout = timeout
        self._stop = threading.Event()
        self._export_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _register(self, provider: MeterProvider, index: int) -> None:
        super()._register(provider, index)
        self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="telemetry-run-metrics", daemon=True)
        # The interpreter is finalizing: no thread can start; flush and shutdown still export.
        with contextlib.suppress(RuntimeError):
            self._thread.start()

    def _after_fork_in_child(self) -> None:
        """The parent's thread does not exist here: the child starts its own, fresh locks."""
        super()._after_fork_in_child()
        self._export_lock = threading.Lock()
        stopped = self._stop.is_set()
        self._stop = threading.Event()
        if stopped or self._shutdown or self._thread is None:
            if stopped:
                self._stop.set()
            return
        self._start_thread()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._export_once(time.monotonic() + self.timeout)

    def _export_once(self, deadline: float) -> bool:
        """Collect and export; False when the export failed (its points counted dropped) or
        another export held the exporter until ``deadline``."""
        left = min(max(0.0, deadline - time.monotonic()), threading.TIMEOUT_MAX)
        if not self._export_lock.acquire(timeout=left):
            return False
        try:
            data = self._collect(deadline)
            points = data.point_count()
            if not points:
                return True
            try:
                result = self.exporter.export(data, deadline=deadline)
            except Exception as exc:  # noqa: BLE001  # an exporter's bug: its points are lost
                self._diagnostics.internal_error(f"{type(self.exporter).__name__}.export", exc)
                result = ExportResult(False, error=f"{type(exc).__name__}: {exc}")
            self._account(points, result)
            return result.success
        except Exception as exc:  # noqa: BLE001  # the reader thread must survive our bugs
            self._diagnostics.internal_error("PeriodicExportingMetricReader", exc)
            return False
        finally:
            self._export_lock.release()

    def _account(self, points: int, result: ExportResult) -> None:
        diagnostics = self._diagnostics
        if result.success:
            rejected = min(result.rejected, points)
            diagnostics.metric_points_exported.add(points - rejected)
            diagnostics.metric_points_dropped.add(rejected)
            return
        diagnostics.metric_points_dropped.add(points)
        diagnostics.warn(
            f"metric-export:{type(self.exporter).__name__}",
            "dropped %d metric point(s): the export failed (%s); the exit line reports the "
            "final counts",
            points,
            result.error or "no reason given",
        )

    def force_flush(self, *, deadline: float) -> bool:
        if self._shutdown:
            return True
        exported = self._export_once(deadline)
        return self.exporter.force_flush(deadline=deadline) and exported

    def shutdown(self, *, deadline: float) -> bool:
        """Export what is left, shut the exporter down, stop the thread; once, by ``deadline``.

        An export the thread has in flight is waited for until the deadline at most; shutting
        the exporter down then ends it (the OTLP exporters cancel their call).
        """
        if self._shutdown:
            return True
        self._stop.set()
        exported = self._export_once(deadline)
        self._shutdown = True
        try:
            self.exporter.shutdown(deadline=deadline)
        except Exception as exc:  # noqa: BLE001  # an exporter's bug must not fail the exit
            self._diagnostics.internal_error(f"{type(self.exporter).__name__}.shutdown", exc)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        return exported
