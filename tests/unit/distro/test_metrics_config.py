"""The launcher's metrics pipeline from the OTEL_* variables (telemetry_run._metrics)."""

from __future__ import annotations

import io
import logging

import pytest

from telemetry_run import _metrics, _otlp
from telemetry_run.config import Config
from telemetry_run.sdk import Diagnostics, Resource
from telemetry_run.sdk.exporters.console_metrics import ConsoleMetricExporter
from telemetry_run.sdk.metrics import AggregationTemporality, Counter, Histogram
from telemetry_run.sdk.metrics import global_provider as metrics_globals


def _build(diagnostics: Diagnostics, **env: str):  # type: ignore[no-untyped-def]
    config = Config.from_env(env, _otlp.VARIABLES)
    provider = _metrics.build_meter_provider(config, Resource({}), diagnostics)
    if provider is not None:
        for reader in provider.readers:
            if hasattr(reader, "_stop"):
                reader._stop.set()  # no export thread in these tests
    return provider


def test_the_default_is_one_otlp_grpc_reader_every_60_s_cumulative(
    diagnostics: Diagnostics,
) -> None:
    provider = _build(diagnostics)
    (reader,) = provider.readers
    assert (reader.interval, reader.timeout) == (60.0, 30.0)
    assert repr(reader.exporter) == "OTLPGrpcMetricExporter('http://localhost:4317')"
    assert set(reader.temporality.values()) == {AggregationTemporality.CUMULATIVE}
    assert provider._exemplar_mode == 1  # trace_based


def test_the_variables_shape_the_reader_and_the_exporter(diagnostics: Diagnostics) -> None:
    provider = _build(
        diagnostics,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318/base",
        OTEL_METRIC_EXPORT_INTERVAL="1500",
        OTEL_METRIC_EXPORT_TIMEOUT="700",
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="Delta",
        OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=(
            "base2_exponential_bucket_histogram"
        ),
        OTEL_METRICS_EXEMPLAR_FILTER="always_off",
    )
    (reader,) = provider.readers
    assert (reader.interval, reader.timeout) == (1.5, 0.7)
    assert reader.exporter.endpoint == "http://collector:4318/base/v1/metrics"
    assert reader.temporality[Counter] is AggregationTemporality.DELTA
    assert reader.temporality[Histogram] is AggregationTemporality.DELTA
    assert reader.default_histogram == "base2_exponential_bucket_histogram"
    assert provider._exemplar_mode == 0


def test_a_metrics_endpoint_wins_and_is_used_as_it_is(diagnostics: Diagnostics) -> None:
    provider = _build(
        diagnostics,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://general:4318",
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="http://metrics:9000/custom",
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="http/json",
    )
    (reader,) = provider.readers
    assert repr(reader.exporter) == (
        "OTLPHttpMetricExporter('http://metrics:9000/custom', protocol='http/json')"
    )


def test_none_builds_nothing_and_console_prints_points(diagnostics: Diagnostics) -> None:
    assert _build(diagnostics, OTEL_METRICS_EXPORTER="none") is None
    provider = _build(diagnostics, OTEL_METRICS_EXPORTER="console")
    (reader,) = provider.readers
    assert isinstance(reader.exporter, ConsoleMetricExporter)
    out = io.StringIO()
    reader.exporter._out = out
    provider.get_meter("m").create_counter("jobs", "{job}").add(2, {"queue": "mail"})
    assert provider.force_flush(timeout=5.0)
    assert out.getvalue() == "metric jobs{queue='mail'} 2 {job}\n"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "-5"),
        ("OTEL_METRICS_EXEMPLAR_FILTER", "sometimes"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "hourly"),
    ],
)
def test_a_bad_value_warns_once_naming_it_and_the_default_is_used(
    diagnostics: Diagnostics, variable: str, value: str
) -> None:
    warnings: list[str] = []
    config = Config.from_env({variable: value}, _otlp.VARIABLES, warn=warnings.append)
    assert len(warnings) == 1 and variable in warnings[0] and value in warnings[0]
    provider = _metrics.build_meter_provider(config, Resource({}), diagnostics)
    assert provider is not None
    (reader,) = provider.readers
    reader._stop.set()  # type: ignore[attr-defined]
    assert (reader.interval, reader.timeout) == (60.0, 30.0)  # type: ignore[attr-defined]
    assert set(reader.temporality.values()) == {AggregationTemporality.CUMULATIVE}
    assert provider._exemplar_mode == 1


def test_an_unknown_exporter_name_warns_and_is_skipped(
    diagnostics: Diagnostics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="telemetry_run")
    provider = _build(diagnostics, OTEL_METRICS_EXPORTER="statsd,console")
    assert [type(r.exporter).__name__ for r in provider.readers] == ["ConsoleMetricExporter"]
    assert any("no metric exporter named statsd" in r.getMessage() for r in caplog.records)


def test_prometheus_is_a_pull_reader_on_the_configured_address(diagnostics: Diagnostics) -> None:
    from telemetry_run.sdk.exporters.prometheus import PrometheusMetricReader
    from telemetry_run.testing.otlp import free_port

    port = free_port()
    provider = _build(
        diagnostics,
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
    )
    try:
        (reader,) = provider.readers
        assert isinstance(reader, PrometheusMetricReader)
        assert (reader.host, reader.port) == ("127.0.0.1", port)
        assert set(reader.temporality.values()) == {AggregationTemporality.CUMULATIVE}
    finally:
        provider.shutdown()


def test_the_provider_is_built_when_first_asked_for_and_only_once(
    diagnostics: Diagnostics,
) -> None:
    built = []

    def factory():  # type: ignore[no-untyped-def]
        provider = _build(diagnostics, OTEL_METRICS_EXPORTER="console")
        built.append(provider)
        return provider

    metrics_globals.set_meter_provider_factory(factory)
    assert built == [] and metrics_globals.built_meter_provider() is None
    first = metrics_globals.get_meter_provider()
    assert metrics_globals.get_meter_provider() is first is built[0]
    assert metrics_globals.built_meter_provider() is first
    first.shutdown(timeout=1.0)
