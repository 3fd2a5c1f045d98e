"""The OpenMetrics 1.0 exposition (#18), parsed back by the reference client's strict parser
(prometheus_client, test-only) and read line by line where the format says exactly what to write;
and the choice between it and the 0.0.4 text by the scraper's ``Accept`` header."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from telemetry_run.sdk import Diagnostics
from telemetry_run.sdk.exporters.prometheus import PrometheusMetricReader
from telemetry_run.sdk.exporters.prometheus_openmetrics import (
    CONTENT_TYPE,
    render,
    wants_openmetrics,
)
from telemetry_run.sdk.metrics import MeterProvider
from telemetry_run.sdk.metrics.data import (
    AggregationTemporality,
    Exemplar,
    Gauge,
    Histogram,
    HistogramDataPoint,
    InstrumentationScope,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from telemetry_run.sdk.resources import Resource
from telemetry_run.testing.otlp import free_port
from tests.unit.sdk.metrics_helpers import shop_data

CUMULATIVE = AggregationTemporality.CUMULATIVE
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
#: What Prometheus 2.42 sends with each scrape.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _exemplar(
    value: float, trace_id: int = TRACE_ID, at: int = 1_700_000_000_250_000_000
) -> Exemplar:
    return Exemplar({}, value, at, SPAN_ID, trace_id)


def test_counter_histogram_and_target_info_parse_back_with_their_units_and_exemplars() -> None:
    busy = Metric(
        "worker.busy",
        "time spent working",
        "s",
        Sum([NumberDataPoint({"kind": "book"}, 1, 2, 3.5, [_exemplar(0.5)])], CUMULATIVE, True),
    )
    orders = Metric(
        "orders", "", "{order}", Sum([NumberDataPoint({}, 1, 2, 7.0)], CUMULATIVE, True)
    )
    histogram = Metric(
        "checkout.duration",
        "checkout time",
        "s",
        Histogram(
            [
                HistogramDataPoint(
                    {"route": "/pay"},
                    1,
                    2,
                    3,
                    2.75,
                    [1, 1, 1],
                    [0.1, 1],
                    0.05,
                    2.0,
                    # The later of two in the (0.1, 1] bucket is kept; an untraced one is not.
                    [_exemplar(0.3, at=10**18), _exemplar(0.7, at=2 * 10**18), _exemplar(2.0, 0)],
                )
            ],
            CUMULATIVE,
        ),
    )
    text = render(shop_data(busy, orders, histogram))
    assert text.endswith("\n# EOF\n")
    families = _families(text)
    assert set(families) == {"target", "worker_busy_seconds", "orders", "checkout_duration_seconds"}

    target = families["target"]
    assert (target.type, target.samples[0].name) == ("info", "target_info")
    assert target.samples[0].labels == {"service_name": "shop"}

    counter = families["worker_busy_seconds"]
    assert (counter.type, counter.unit, counter.documentation) == (
        "counter",
        "seconds",
        "time spent working",
    )
    (sample,) = counter.samples
    assert (sample.name, sample.value) == ("worker_busy_seconds_total", 3.5)
    assert sample.exemplar.labels == {"trace_id": f"{TRACE_ID:032x}", "span_id": f"{SPAN_ID:016x}"}
    assert (sample.exemplar.value, float(sample.exemplar.timestamp)) == (0.5, 1_700_000_000.25)
    assert families["orders"].unit == ""  # "{order}" is no unit

    hist = families["checkout_duration_seconds"]
    assert (hist.type, hist.unit) == ("histogram", "seconds")
    buckets = [s for s in hist.samples if s.name.endswith("_bucket")]
    assert [(s.labels["le"], s.value) for s in buckets] == [("0.1", 1), ("1.0", 2), ("+Inf", 3)]
    assert [s.exemplar.value if s.exemplar else None for s in buckets] == [None, 0.7, None]
    assert all(s.labels["otel_scope_name"] == "shop" for s in hist.samples)
    assert {s.name: s.value for s in hist.samples if not s.name.endswith("_bucket")} == {
        "checkout_duration_seconds_count": 3,
        "checkout_duration_seconds_sum": 2.75,
    }


def test_exact_lines_of_a_counter_family_per_the_format() -> None:
    busy = Metric(
        "worker.busy",
        'a "busy" worker',
        "s",
        Sum([NumberDataPoint({}, 1, 2, 2.0)], CUMULATIVE, True),
    )
    scope = 'otel_scope_name="shop",otel_scope_version="1.2"'
    assert render(shop_data(busy)).splitlines()[3:] == [
        "# TYPE worker_busy_seconds counter",
        "# UNIT worker_busy_seconds seconds",
        '# HELP worker_busy_seconds a \\"busy\\" worker',
        f"worker_busy_seconds_total{{{scope}}} 2",
        "# EOF",
    ]


def test_one_name_from_two_scopes_is_one_family_and_gauges_keep_their_sign() -> None:
    def queue(scope: str, value: float) -> ScopeMetrics:
        metric = Metric("queue.size", "", "1", Gauge([NumberDataPoint({}, 1, 2, value)]))
        return ScopeMetrics(InstrumentationScope(scope), [metric])

    resource = ResourceMetrics(Resource({}), [queue("a", -2.5), queue("b", 4)])
    family = _families(render(MetricsData([resource])))["queue_size"]
    assert family.type == "gauge"
    assert [(s.labels["otel_scope_name"], s.value) for s in family.samples] == [
        ("a", -2.5),
        ("b", 4),
    ]


def test_a_histogram_of_negative_values_has_no_sum_nor_count_and_still_parses() -> None:
    def histogram(bounds: list[float], total: float) -> Metric:
        point = HistogramDataPoint({}, 1, 2, 2, total, [1, 1, 0], bounds, -3.0, 1.0)
        return Metric("offset", "", "s", Histogram([point], CUMULATIVE))

    for bounds, total in (([-1.0, 0.0], -2.0), ([-1.0, 5.0], 3.0), ([1.0, 5.0], -2.0)):
        family = _families(render(shop_data(histogram(bounds, total))))["offset_seconds"]
        # Neither _sum nor _count (they go together); the +Inf bucket still counts them all.
        assert [(s.name, s.labels["le"], s.value) for s in family.samples][-1:] == [
            ("offset_seconds_bucket", "+Inf", 2)
        ]
        assert {s.name for s in family.samples} == {"offset_seconds_bucket"}
    kept = _families(render(shop_data(histogram([1.0, 5.0], 2.0))))["offset_seconds"]
    assert [s.value for s in kept.samples if s.name.endswith("_sum")] == [2.0]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", True),
        ("text/plain;version=0.0.4;q=0.5,*/*;q=0.1", False),
        ("application/openmetrics-text;q=0,text/plain", False),
        ("application/openmetrics-text;q=bad", False),
        ("", False),
        (None, False),
    ],
)
def test_openmetrics_only_when_the_scraper_asks_for_it(accept: str | None, expected: bool) -> None:
    assert wants_openmetrics(accept) is expected


@pytest.fixture
def served() -> Iterator[tuple[MeterProvider, PrometheusMetricReader]]:
    reader = PrometheusMetricReader("127.0.0.1", free_port(), diagnostics=Diagnostics())
    provider = MeterProvider([reader], resource=Resource({"service.name": "shop"}))
    try:
        yield provider, reader
    finally:
        provider.shutdown()


def _get(port: int, accept: str | None) -> tuple[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if accept is not None:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


def test_a_prometheus_scrape_gets_openmetrics_and_a_plain_one_the_text_format(
    served: tuple[MeterProvider, PrometheusMetricReader],
) -> None:
    provider, reader = served
    assert reader.port is not None
    provider.get_meter("shop").create_counter("shop.orders", "{order}").add(3)
    content_type, text = _get(reader.port, PROMETHEUS_ACCEPT)
    assert content_type == CONTENT_TYPE
    assert content_type == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    (sample,) = _families(text)["shop_orders"].samples
    assert (sample.name, sample.value) == ("shop_orders_total", 3)
    content_type, text = _get(reader.port, None)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert "# EOF" not in text and "# TYPE shop_orders_total counter" in text
