"""The Prometheus pull exporter as a scraper sees it: real HTTP on 127.0.0.1, a real provider."""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from telemetry_run.sdk import Diagnostics
from telemetry_run.sdk.exporters.prometheus import PrometheusMetricReader
from telemetry_run.sdk.metrics import MeterProvider
from telemetry_run.sdk.resources import Resource
from telemetry_run.testing.otlp import free_port


def _scrape(port: int) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def _value(text: str, series: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(series + " ")]
    return float(line.rsplit(" ", 1)[1])


@pytest.fixture
def served() -> Iterator[tuple[MeterProvider, PrometheusMetricReader, Diagnostics]]:
    diagnostics = Diagnostics()
    reader = PrometheusMetricReader("127.0.0.1", free_port(), diagnostics=diagnostics)
    provider = MeterProvider(
        [reader], resource=Resource({"service.name": "shop"}), diagnostics=diagnostics
    )
    try:
        yield provider, reader, diagnostics
    finally:
        provider.shutdown()


def test_a_counter_is_served_as_a_monotonic_total_across_scrapes(
    served: tuple[MeterProvider, PrometheusMetricReader, Diagnostics],
) -> None:
    provider, reader, _ = served
    assert reader.port is not None
    orders = provider.get_meter("shop").create_counter("orders", unit="{order}")
    orders.add(2, {"kind": "book"})
    status, content_type, first = _scrape(reader.port)
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    series = 'orders_total{kind="book",otel_scope_name="shop"}'
    assert "# TYPE orders_total counter" in first
    assert 'target_info{service_name="shop"} 1' in first
    orders.add(3, {"kind": "book"})
    second = _scrape(reader.port)[2]
    assert (_value(first, series), _value(second, series)) == (2, 5)  # cumulative, never reset


def test_a_collection_that_fails_answers_500_and_is_reported_once(
    served: tuple[MeterProvider, PrometheusMetricReader, Diagnostics],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, reader, _ = served
    assert reader.port is not None

    def broken(timeout: float = 10.0) -> None:
        raise RuntimeError("collection bug")

    monkeypatch.setattr(reader, "collect", broken)
    assert _scrape(reader.port)[0] == 500
    assert _scrape(reader.port)[0] == 500
    reports = [r for r in caplog.records if "Prometheus exporter: a scrape" in r.getMessage()]
    assert len(reports) == 1 and "collection bug" in reports[0].getMessage()  # once
    monkeypatch.undo()
    assert _scrape(reader.port)[0] == 200  # the next scrape is served again


def test_a_taken_port_moves_to_the_next_free_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="telemetry_run")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        reader = PrometheusMetricReader("127.0.0.1", port)
        provider = MeterProvider([reader])
        try:
            assert reader.port is not None and reader.port > port
            assert _scrape(reader.port)[0] == 200
            assert f"OTEL_EXPORTER_PROMETHEUS_PORT: {port} is taken" in caplog.text
        finally:
            provider.shutdown()


def test_shutdown_closes_the_port() -> None:
    reader = PrometheusMetricReader("127.0.0.1", free_port())
    provider = MeterProvider([reader])
    port = reader.port
    assert port is not None and _scrape(port)[0] == 200
    provider.shutdown()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
