"""The metrics SDK: ``MeterProvider``, instruments, aggregations, views, exemplars, readers.

Recording is cheap for a repeated attribute set (``AttributeSet``, or the same dict) and exact
from many threads (one lock per stream). Importing this package imports none of it: each name
loads its module when first used, so the launcher can offer metrics at start-up for free
(``get_meter_provider`` builds the pipeline when code first asks for a meter).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from telemetry_run.sdk._lazy import lazy_exports

if TYPE_CHECKING:
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
    from telemetry_run.sdk.metrics.global_provider import (
        get_meter,
        get_meter_provider,
        set_meter_provider,
    )
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
    "get_meter",
    "get_meter_provider",
    "set_meter_provider",
]

_HOME: Final = {
    "DEFAULT_BOUNDARIES": "telemetry_run.sdk.metrics.aggregation",
    "Aggregation": "telemetry_run.sdk.metrics.aggregation",
    "DefaultAggregation": "telemetry_run.sdk.metrics.aggregation",
    "DropAggregation": "telemetry_run.sdk.metrics.aggregation",
    "ExplicitBucketHistogramAggregation": "telemetry_run.sdk.metrics.aggregation",
    "ExponentialBucketHistogramAggregation": "telemetry_run.sdk.metrics.aggregation",
    "LastValueAggregation": "telemetry_run.sdk.metrics.aggregation",
    "SumAggregation": "telemetry_run.sdk.metrics.aggregation",
    "AttributeSet": "telemetry_run.sdk.metrics.attributes",
    "AggregationTemporality": "telemetry_run.sdk.metrics.data",
    "MetricsData": "telemetry_run.sdk.metrics.data",
    "CallbackOptions": "telemetry_run.sdk.metrics.instruments",
    "Counter": "telemetry_run.sdk.metrics.instruments",
    "Gauge": "telemetry_run.sdk.metrics.instruments",
    "Histogram": "telemetry_run.sdk.metrics.instruments",
    "ObservableCounter": "telemetry_run.sdk.metrics.instruments",
    "ObservableGauge": "telemetry_run.sdk.metrics.instruments",
    "ObservableUpDownCounter": "telemetry_run.sdk.metrics.instruments",
    "Observation": "telemetry_run.sdk.metrics.instruments",
    "UpDownCounter": "telemetry_run.sdk.metrics.instruments",
    "DEFAULT_CARDINALITY_LIMIT": "telemetry_run.sdk.metrics.provider",
    "Meter": "telemetry_run.sdk.metrics.provider",
    "MeterProvider": "telemetry_run.sdk.metrics.provider",
    "InMemoryMetricReader": "telemetry_run.sdk.metrics.reader",
    "MetricExporter": "telemetry_run.sdk.metrics.reader",
    "MetricReader": "telemetry_run.sdk.metrics.reader",
    "PeriodicExportingMetricReader": "telemetry_run.sdk.metrics.reader",
    "View": "telemetry_run.sdk.metrics.view",
    "get_meter": "telemetry_run.sdk.metrics.global_provider",
    "get_meter_provider": "telemetry_run.sdk.metrics.global_provider",
    "set_meter_provider": "telemetry_run.sdk.metrics.global_provider",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME)
