"""The metrics SDK: ``MeterProvider``, instruments, aggregations, views, exemplars, readers.

Nothing here is imported at start-up unless metrics export is on; recording is cheap for a
repeated attribute set (``attributes``) and exact from many threads (one lock per stream).
"""

from __future__ import annotations

from telemetry_run.sdk.metrics.aggregation import (
    DEFAULT_BOUNDARIES,
    Aggregation,
    DefaultAggregation,
    DropAggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    LastValueAggregation,
    SumAggregation,
)
from telemetry_run.sdk.metrics.attributes import AttributeSet
from telemetry_run.sdk.metrics.data import AggregationTemporality, MetricsData
from telemetry_run.sdk.metrics.instruments import (
    CallbackOptions,
    Counter,
    Gauge,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    Observation,
    UpDownCounter,
)
from telemetry_run.sdk.metrics.provider import DEFAULT_CARDINALITY_LIMIT, Meter, MeterProvider
from telemetry_run.sdk.metrics.reader import (
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from telemetry_run.sdk.metrics.view import View

__all__ = [
    "DEFAULT_BOUNDARIES",
    "DEFAULT_CARDINALITY_LIMIT",
    "Aggregation",
    "AggregationTemporality",
    "AttributeSet",
    "CallbackOptions",
    "Counter",
    "DefaultAggregation",
    "DropAggregation",
    "ExplicitBucketHistogramAggregation",
    "ExponentialBucketHistogramAggregation",
    "Gauge",
    "Histogram",
    "InMemoryMetricReader",
    "LastValueAggregation",
    "Meter",
    "MeterProvider",
    "MetricExporter",
    "MetricReader",
    "MetricsData",
    "ObservableCounter",
    "ObservableGauge",
    "ObservableUpDownCounter",
    "Observation",
    "PeriodicExportingMetricReader",
    "SumAggregation",
    "UpDownCounter",
    "View",
]
