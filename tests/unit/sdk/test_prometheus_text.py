"""The Prometheus 0.0.4 text format of collected metrics (expectations written from the format's
specification and the OpenTelemetry compatibility rules), counters monotonic across scrapes."""

from __future__ import annotations

from telemetry_run.sdk.exporters.prometheus_text import render
from telemetry_run.sdk.metrics.data import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)
from tests.unit.sdk.metrics_helpers import shop_data

CUMULATIVE = AggregationTemporality.CUMULATIVE


def test_counter_histogram_and_target_info_render_per_the_format() -> None:
    counter = Metric(
        "orders",
        "orders placed",
        "{order}",
        Sum([NumberDataPoint({"kind": "book"}, 1, 2, 3.0)], CUMULATIVE, True),
    )
    histogram = Metric(
        "checkout.duration",
        "checkout time",
        "s",
        Histogram(
            [HistogramDataPoint({}, 1, 2, 3, 0.75, [1, 2, 0], [0.1, 0.5], 0.05, 0.4)], CUMULATIVE
        ),
    )
    text = render(shop_data(counter, histogram))
    scope = 'otel_scope_name="shop",otel_scope_version="1.2"'
    assert text.splitlines() == [
        "# HELP target_info Target metadata",
        "# TYPE target_info gauge",
        'target_info{service_name="shop"} 1',
        "# HELP orders_total orders placed",
        "# TYPE orders_total counter",
        f'orders_total{{kind="book",{scope}}} 3',
        "# HELP checkout_duration_seconds checkout time",
        "# TYPE checkout_duration_seconds histogram",
        f'checkout_duration_seconds_bucket{{{scope},le="0.1"}} 1',
        f'checkout_duration_seconds_bucket{{{scope},le="0.5"}} 3',
        f'checkout_duration_seconds_bucket{{{scope},le="+Inf"}} 3',
        f"checkout_duration_seconds_sum{{{scope}}} 0.75",
        f"checkout_duration_seconds_count{{{scope}}} 3",
    ]


def test_non_monotonic_sum_is_a_gauge_and_label_values_are_escaped() -> None:
    queue = Metric(
        "queue.size",
        "",
        "1",
        Sum([NumberDataPoint({"q": 'a"b\\c'}, 1, 2, -2.5)], CUMULATIVE, False),
    )
    lines = render(shop_data(queue)).splitlines()
    assert "# TYPE queue_size gauge" in lines
    assert (
        'queue_size{q="a\\"b\\\\c",otel_scope_name="shop",otel_scope_version="1.2"} -2.5' in lines
    )
