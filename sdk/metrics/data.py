"""What a collection produces: metrics as the OTLP data model shapes them, immutable.

Readers hand these to exporters; the OTLP encoder, the console and tests read them. Times are
nanoseconds since the epoch; attributes are plain dicts (copies: never the recorder's own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import NamedTuple

from telemetry_run.sdk.resources import Resource
from telemetry_run.sdk.trace.api import AttributeValue

__all__ = [
    "AggregationTemporality",
    "Exemplar",
    "ExponentialHistogram",
    "ExponentialHistogramDataPoint",
    "Gauge",
    "Histogram",
    "HistogramDataPoint",
    "InstrumentationScope",
    "Metric",
    "MetricsData",
    "NumberDataPoint",
    "ResourceMetrics",
    "ScopeMetrics",
    "Sum",
]

Attributes = Mapping[str, AttributeValue]


class AggregationTemporality(IntEnum):
    """OTLP's values: DELTA points cover one collection interval, CUMULATIVE ones everything
    since their start time."""

    DELTA = 1
    CUMULATIVE = 2


class Exemplar(NamedTuple):
    """One measurement kept as an example: ``filtered_attributes`` are those a view dropped;
    ``trace_id``/``span_id`` the span current when it was recorded (0 when none)."""

    filtered_attributes: Attributes
    value: float
    time_unix_nano: int
    span_id: int
    trace_id: int


class NumberDataPoint(NamedTuple):
    attributes: Attributes
    start_time_unix_nano: int
    time_unix_nano: int
    value: float
    exemplars: Sequence[Exemplar] = ()


class HistogramDataPoint(NamedTuple):
    attributes: Attributes
    start_time_unix_nano: int
    time_unix_nano: int
    count: int  # type: ignore[assignment]  # OTLP's field name, shadowing tuple.count
    sum: float
    bucket_counts: Sequence[int]
    explicit_bounds: Sequence[float]
    min: float
    max: float
    exemplars: Sequence[Exemplar] = ()


class ExponentialHistogramDataPoint(NamedTuple):
    attributes: Attributes
    start_time_unix_nano: int
    time_unix_nano: int
    count: int  # type: ignore[assignment]  # OTLP's field name, shadowing tuple.count
    sum: float
    scale: int
    zero_count: int
    positive_offset: int
    positive_bucket_counts: Sequence[int]
    negative_offset: int
    negative_bucket_counts: Sequence[int]
    min: float
    max: float
    exemplars: Sequence[Exemplar] = ()


class Sum(NamedTuple):
    data_points: Sequence[NumberDataPoint]
    aggregation_temporality: AggregationTemporality
    is_monotonic: bool


class Gauge(NamedTuple):
    data_points: Sequence[NumberDataPoint]


class Histogram(NamedTuple):
    data_points: Sequence[HistogramDataPoint]
    aggregation_temporality: AggregationTemporality


class ExponentialHistogram(NamedTuple):
    data_points: Sequence[ExponentialHistogramDataPoint]
    aggregation_temporality: AggregationTemporality


DataT = Sum | Gauge | Histogram | ExponentialHistogram


class Metric(NamedTuple):
    name: str
    description: str
    unit: str
    data: DataT


class InstrumentationScope(NamedTuple):
    name: str
    version: str | None = None
    schema_url: str | None = None
    attributes: Attributes | None = None


class ScopeMetrics(NamedTuple):
    scope: InstrumentationScope
    metrics: Sequence[Metric]
    schema_url: str = ""


class ResourceMetrics(NamedTuple):
    resource: Resource
    scope_metrics: Sequence[ScopeMetrics]
    schema_url: str = ""


class MetricsData(NamedTuple):
    resource_metrics: Sequence[ResourceMetrics]

    def metrics(self) -> list[Metric]:
        """Every metric, whatever its scope (what tests and the console read)."""
        return [
            metric
            for resource_metrics in self.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        ]

    def point_count(self) -> int:
        """How many data points (what the exporter's accounting counts)."""
        return sum(len(metric.data.data_points) for metric in self.metrics())
