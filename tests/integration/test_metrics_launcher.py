"""Metrics under ``telemetry-run``: built when the app asks for a meter, flushed at exit to the
real receiver, and a forked child reports its own counts, never its parent's again."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry_run.testing.otlp import OTLPReceiver
from tests.integration.conftest import PYTHON, clean_env, launch

APP = """
import os, sys
from telemetry_run import trace
from telemetry_run.sdk.metrics import get_meter

meter = get_meter("shop", "1.0")
orders = meter.create_counter("orders", "{order}")
latency = meter.create_histogram("latency", "ms")
with trace.get_tracer("app").start_as_current_span("checkout"):
    orders.add(1, {"tier": "gold"})
    latency.record(12.5, {"route": "/pay"})
if "--fork" in sys.argv:
    pid = os.fork()
    if pid == 0:
        orders.add(10, {"tier": "gold"})
        sys.exit(0)  # the child's own exit flush sends the child's own points
    os.waitpid(pid, 0)
"""

# Runtime metrics off by name: then nothing builds the pipeline, however long the app runs.
QUIET_APP = """
import sys, threading
print("telemetry_run.sdk.metrics.provider" in sys.modules)
print(any(t.name == "telemetry-run-runtime-metrics" for t in threading.enumerate()))
"""


@pytest.fixture
def app(tmp_path: Path) -> str:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return str(path)


def _env(receiver: OTLPReceiver, protocol: str, **extra: str) -> dict[str, str]:
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base
    return clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="shop",
        **extra,
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_apps_metrics_arrive_at_exit_with_an_exemplar_of_an_exported_trace(
    otlp_receiver: OTLPReceiver, app: str, protocol: str
) -> None:
    result = launch([PYTHON, app], _env(otlp_receiver, protocol))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # everything delivered: no exit line, no warning
    metrics = {m.name: m for m in otlp_receiver.wait_for_metrics(2)}
    (span,) = otlp_receiver.wait_for_spans(1)
    request = otlp_receiver.metric_requests[0]
    if protocol != "grpc":
        assert request.path == "/v1/metrics"
    resource = {
        kv.key: kv.value.string_value
        for kv in request.request.resource_metrics[0].resource.attributes
    }
    assert resource["service.name"] == "shop"
    (orders,) = metrics["orders"].sum.data_points
    assert orders.as_int == 1
    (latency,) = metrics["latency"].histogram.data_points
    assert (latency.count, latency.sum) == (1, 12.5)
    (exemplar,) = latency.exemplars
    assert (exemplar.trace_id, exemplar.span_id) == (span.trace_id, span.span_id)


def test_a_forked_child_reports_only_its_own_counts(otlp_receiver: OTLPReceiver, app: str) -> None:
    result = launch([PYTHON, app, "--fork"], _env(otlp_receiver, "grpc"))
    assert result.returncode == 0, result.stderr
    otlp_receiver.wait_for_metrics(3)  # the child's counter, the parent's two metrics
    orders = sorted(
        point.as_int
        for metric in otlp_receiver.metrics()
        if metric.name == "orders"
        for point in metric.sum.data_points
    )
    assert orders == [1, 10]  # the child's 10 without the parent's 1 a second time


def test_a_failed_metrics_export_is_on_the_exit_line(app: str) -> None:
    from telemetry_run.testing.otlp import free_port

    env = clean_env(
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="runtime_metrics",  # the app's points only
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="1000",
    )
    result = launch([PYTHON, app], env)
    assert result.returncode == 0
    assert "metric_points exported=0 dropped=2" in result.stderr


def test_an_app_that_records_no_metric_never_builds_the_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "quiet.py"
    path.write_text(QUIET_APP)
    env = clean_env(
        OTEL_METRICS_EXPORTER="otlp", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="runtime_metrics"
    )
    result = launch([PYTHON, str(path)], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
