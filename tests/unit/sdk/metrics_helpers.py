"""What the metrics tests share: a provider on a fake clock, reading points back, and hand-made
collections for the exporters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from telemetry_run.sdk import Diagnostics, Resource
from telemetry_run.sdk.metrics import InMemoryMetricReader, MeterProvider, View
from telemetry_run.sdk.metrics.data import (
    InstrumentationScope,
    Metric,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)


@dataclass
class FakeTime:
    """Wall-clock nanoseconds and a monotonic clock that move only when told."""

    ns: int = 1_000_000_000_000
    monotonic: float = 100.0
    calls: list[str] = field(default_factory=list)

    def time_ns(self) -> int:
        return self.ns

    def clock(self) -> float:
        return self.monotonic

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)
        self.monotonic += seconds


@dataclass
class MetricsRig:
    provider: MeterProvider
    reader: InMemoryMetricReader
    time: FakeTime

    def collect(self) -> MetricsData:
        return self.reader.collect()

    def metric(self, name: str, data: MetricsData | None = None) -> Metric:
        data = self.collect() if data is None else data
        found = [m for m in data.metrics() if m.name == name]
        assert len(found) == 1, f"{name}: {[m.name for m in data.metrics()]}"
        return found[0]


def make_rig(
    diagnostics: Diagnostics,
    *,
    temporality: str = "cumulative",
    views: Sequence[View] = (),
    **kwargs: Any,
) -> MetricsRig:
    fake = FakeTime()
    reader = InMemoryMetricReader(temporality_preference=temporality, diagnostics=diagnostics)
    provider = MeterProvider(
        [reader],
        resource=Resource({"service.name": "test"}),
        views=views,
        diagnostics=diagnostics,
        clock=fake.clock,
        time_ns=fake.time_ns,
        **kwargs,
    )
    return MetricsRig(provider, reader, fake)


def by_attributes(metric: Metric) -> dict[tuple[tuple[str, Any], ...], Any]:
    """Each point of ``metric`` keyed by its sorted attributes."""
    return {tuple(sorted(p.attributes.items())): p for p in metric.data.data_points}


def shop_data(*metrics: Metric) -> MetricsData:
    """``metrics`` as one collection of scope ``shop`` 1.2, from service ``shop``."""
    scope = ScopeMetrics(InstrumentationScope("shop", "1.2"), metrics)
    return MetricsData([ResourceMetrics(Resource({"service.name": "shop"}), [scope])])
