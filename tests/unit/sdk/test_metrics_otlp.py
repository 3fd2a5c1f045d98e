"""The OTLP metric exporters, end to end: our SDK, the real receiver, opentelemetry-proto."""

from __future__ import annotations

import pytest

from telemetry_run.exit import format_exit_line
from telemetry_run.sdk import Diagnostics, Resource
from telemetry_run.sdk.exporters.otlp import OTLPGrpcMetricExporter, OTLPHttpMetricExporter
from telemetry_run.sdk.metrics import (
    ExponentialBucketHistogramAggregation,
    MeterProvider,
    Observation,
    PeriodicExportingMetricReader,
    View,
)
from telemetry_run.testing.otlp import OTLPReceiver, free_port
from tests.unit.sdk.conftest import make_recorder

CUMULATIVE = 2  # AggregationTemporality in opentelemetry-proto
DELTA = 1


def _exporter(receiver: OTLPReceiver, transport: str, **kwargs: object):  # type: ignore[no-untyped-def]
    if transport == "grpc":
        return OTLPGrpcMetricExporter(receiver.grpc_endpoint, **kwargs)  # type: ignore[arg-type]
    protocol = "http/json" if transport == "http/json" else "http/protobuf"
    return OTLPHttpMetricExporter(receiver.http_metrics_endpoint, protocol=protocol, **kwargs)  # type: ignore[arg-type]


def _provider(exporter: object, diagnostics: Diagnostics, **kwargs: object) -> MeterProvider:
    reader = PeriodicExportingMetricReader(exporter, interval=3600, diagnostics=diagnostics)  # type: ignore[arg-type]
    return MeterProvider(
        [reader],
        resource=Resource({"service.name": "shop"}),
        diagnostics=diagnostics,
        views=[View("sizes", aggregation=ExponentialBucketHistogramAggregation())],
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("transport", ["grpc", "http/protobuf", "http/json"])
def test_every_point_kind_arrives_as_opentelemetry_proto_decodes_it(
    diagnostics: Diagnostics, otlp_receiver: OTLPReceiver, transport: str
) -> None:
    spans = make_recorder(diagnostics)
    compression = "none" if transport == "http/json" else "gzip"
    exporter = _exporter(otlp_receiver, transport, compression=compression)
    provider = _provider(exporter, diagnostics)
    meter = provider.get_meter("shop.checkout", "2.0")
    latency = meter.create_histogram("http.server.request.duration", "s")
    with spans.tracer.start_as_current_span("POST /pay") as span:
        latency.record(0.25, {"http.route": "/pay", "http.response.status_code": 200})
    meter.create_counter("orders").add(3, {"tier": "gold"})
    meter.create_up_down_counter("carts").add(-1.5)
    meter.create_histogram("sizes", "By").record(1024)
    meter.create_observable_gauge("queue", [lambda _: [Observation(7, {"q": "mail"})]])

    assert provider.force_flush(timeout=10.0)
    received = otlp_receiver.wait_for_metrics(5)
    (request,) = otlp_receiver.metric_requests
    assert request.content_encoding == (None if compression == "none" else "gzip")
    resource = request.request.resource_metrics[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes} == {"service.name": "shop"}
    scope = request.request.resource_metrics[0].scope_metrics[0].scope
    assert (scope.name, scope.version) == ("shop.checkout", "2.0")
    metrics = {m.name: m for m in received}

    duration = metrics["http.server.request.duration"]
    assert duration.unit == "s"
    assert duration.histogram.aggregation_temporality == CUMULATIVE
    (point,) = duration.histogram.data_points
    assert (point.count, point.sum, point.min, point.max) == (1, 0.25, 0.25, 0.25)
    assert list(point.bucket_counts)[1] == 1 and len(point.explicit_bounds) == 15
    assert {kv.key for kv in point.attributes} == {"http.route", "http.response.status_code"}
    (exemplar,) = point.exemplars
    context = span.get_span_context()
    assert exemplar.trace_id == context.trace_id.to_bytes(16, "big")
    assert exemplar.span_id == context.span_id.to_bytes(8, "big")
    assert exemplar.as_double == 0.25

    orders = metrics["orders"].sum
    assert orders.is_monotonic and orders.aggregation_temporality == CUMULATIVE
    assert orders.data_points[0].as_int == 3
    assert orders.data_points[0].attributes[0].value.string_value == "gold"
    carts = metrics["carts"].sum
    assert not carts.is_monotonic and carts.data_points[0].as_double == -1.5
    sizes = metrics["sizes"].exponential_histogram.data_points[0]
    assert (sizes.count, sizes.sum, sizes.scale) == (1, 1024, 20)
    assert list(sizes.positive.bucket_counts) == [1]
    assert metrics["queue"].gauge.data_points[0].as_int == 7
    assert diagnostics.snapshot()["metric_points_exported"] == 5


def test_delta_temporality_from_the_exporter_reaches_the_receiver(
    diagnostics: Diagnostics, otlp_receiver: OTLPReceiver
) -> None:
    exporter = OTLPGrpcMetricExporter(otlp_receiver.grpc_endpoint, temporality_preference="delta")
    provider = _provider(exporter, diagnostics)
    counter = provider.get_meter("m").create_counter("c")
    for amount in (2, 5):
        counter.add(amount)
        assert provider.force_flush(timeout=10.0)
    first, second = [m.sum for m in otlp_receiver.wait_for_metrics(2)]
    assert first.aggregation_temporality == second.aggregation_temporality == DELTA
    assert [first.data_points[0].as_int, second.data_points[0].as_int] == [2, 5]
    assert second.data_points[0].start_time_unix_nano == first.data_points[0].time_unix_nano


def test_the_periodic_reader_exports_on_its_own_at_each_interval(
    diagnostics: Diagnostics, otlp_receiver: OTLPReceiver
) -> None:
    exporter = OTLPHttpMetricExporter(otlp_receiver.http_metrics_endpoint)
    reader = PeriodicExportingMetricReader(exporter, interval=0.05, diagnostics=diagnostics)
    provider = MeterProvider([reader], diagnostics=diagnostics)
    provider.get_meter("m").create_counter("ticks").add(1)
    received = otlp_receiver.wait_for_metrics(2, timeout=30.0)  # two intervals, unprompted
    assert all(m.sum.data_points[0].as_int == 1 for m in received)
    provider.shutdown(timeout=10.0)


def test_points_of_a_failed_export_are_counted_dropped_and_on_the_exit_line(
    diagnostics: Diagnostics, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = OTLPHttpMetricExporter(f"http://127.0.0.1:{free_port()}/v1/metrics", timeout=0.5)
    provider = _provider(exporter, diagnostics)
    counter = provider.get_meter("m").create_counter("c")
    counter.add(1, {"a": 1})
    counter.add(1, {"a": 2})
    assert provider.force_flush(timeout=5.0) is False
    counts = diagnostics.snapshot()
    assert (counts["metric_points_exported"], counts["metric_points_dropped"]) == (0, 2)
    assert format_exit_line(counts).endswith(" metric_points exported=0 dropped=2")
    assert any("dropped 2 metric point(s)" in r.getMessage() for r in caplog.records)


def test_the_exit_line_is_unchanged_when_no_metric_was_exported(diagnostics: Diagnostics) -> None:
    assert "metric_points" not in format_exit_line(diagnostics.snapshot())


def test_shutdown_exports_what_is_left_once(
    diagnostics: Diagnostics, otlp_receiver: OTLPReceiver
) -> None:
    exporter = OTLPGrpcMetricExporter(otlp_receiver.grpc_endpoint)
    provider = _provider(exporter, diagnostics)
    provider.get_meter("m").create_counter("c").add(4)
    assert provider.shutdown(timeout=10.0)
    assert provider.shutdown(timeout=10.0)
    (metric,) = otlp_receiver.wait_for_metrics(1)
    assert metric.sum.data_points[0].as_int == 4
    assert len(otlp_receiver.metric_requests) == 1


@pytest.mark.parametrize(
    "kwargs", [{"temporality_preference": "often"}, {"default_histogram": "x"}]
)
def test_an_exporter_with_an_unknown_preference_is_refused(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        OTLPGrpcMetricExporter("http://127.0.0.1:4317", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["grpc", "http/protobuf", "http/json"])
def test_a_partial_success_warns_with_the_rejected_data_points(
    diagnostics: Diagnostics,
    otlp_receiver: OTLPReceiver,
    transport: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    otlp_receiver.partial_success(1, "too old")
    exporter = _exporter(otlp_receiver, transport, diagnostics=diagnostics)
    provider = _provider(exporter, diagnostics)
    provider.get_meter("m").create_counter("c").add(4)
    provider.force_flush(timeout=10.0)
    (metric,) = otlp_receiver.wait_for_metrics(1)
    assert metric.sum.data_points[0].as_int == 4
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "accepted the batch partially: 1 data point(s) rejected (too old)" in m for m in messages
    )
    provider.shutdown(timeout=10.0)


def test_the_exit_line_has_the_metric_points_then_the_logs_part(
    diagnostics: Diagnostics, otlp_receiver: OTLPReceiver
) -> None:
    import io

    from telemetry_run.exit import ExitHook
    from telemetry_run.sdk.exporters import ExportResult
    from telemetry_run.sdk.logs import LogData
    from telemetry_run.sdk.logs.processor import BatchLogRecordProcessor
    from telemetry_run.sdk.logs.provider import LoggerProvider
    from telemetry_run.sdk.trace.provider import TracerProvider

    class Refused:
        def export(self, records: object, *, deadline: float) -> ExportResult:
            return ExportResult(False, error="refused")

        def shutdown(self, *, deadline: float) -> None:
            pass

    traces = TracerProvider(diagnostics=diagnostics, shutdown_on_exit=False)
    meters = _provider(_exporter(otlp_receiver, "grpc"), diagnostics)
    logs = LoggerProvider(Resource({}), Diagnostics(noun="log record"))
    logs.add_log_record_processor(
        BatchLogRecordProcessor(Refused(), schedule_delay=3600.0, diagnostics=logs.diagnostics)  # type: ignore[arg-type]
    )
    err = io.StringIO()
    hook = ExitHook(
        traces, diagnostics, timeout=5.0, err=err, logs=logs, meter_provider=lambda: meters
    )
    counter = meters.get_meter("m").create_counter("c")
    counter.add(1, {"a": 1})
    counter.add(1, {"a": 2})
    logs.emit(
        LogData(
            time=1,
            observed_time=1,
            severity_number=9,
            severity_text="INFO",
            body="lost",
            scope="app",
            resource=logs.resource,
        )
    )
    assert otlp_receiver.metric_requests == []  # the interval is an hour: exit exports them
    hook.flush()
    assert len(otlp_receiver.wait_for_metrics(1)) == 1
    (line,) = err.getvalue().splitlines()
    assert line.endswith(
        "invalid_attributes=0 metric_points exported=2 dropped=0"
        " logs produced=1 exported=0 dropped=1 "
        "(queue_full=0, export_failed=1, rejected=0, shutdown=0)"
    )
