"""``telemetry-run python app.py`` exporting over OTLP to a real receiver, or to none at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry_run.testing.otlp import OTLPReceiver, free_port
from tests.integration.conftest import PYTHON, clean_env, launch
from tests.integration.test_launcher import EXIT_LINE

APP = """
import time
from telemetry_run import trace

tracer = trace.get_tracer("app", "1.0")
with tracer.start_as_current_span("request") as span:
    span.set_attribute("user.id", 42)
    for i in range(4):
        with tracer.start_as_current_span(f"step-{i}"):
            pass
print(time.time(), flush=True)
"""

SHUTDOWN_MS = 1000
# Where the test needs an export to reach the receiver before the exit bound ends it: the
# transport is imported at the first export (not at start-up), which a loaded 2-core machine
# can stretch past a second.
REACHING_SHUTDOWN_MS = 10_000


@pytest.fixture
def app(tmp_path: Path) -> str:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return str(path)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_the_apps_spans_reach_the_receiver(
    otlp_receiver: OTLPReceiver, app: str, protocol: str
) -> None:
    endpoint = otlp_receiver.grpc_endpoint if protocol == "grpc" else otlp_receiver.http_base
    env = clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_HEADERS="x-api-key=abc%20def",
        OTEL_SERVICE_NAME="checkout",
    )
    result = launch([PYTHON, app], env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # everything delivered: no exit line, no warning
    spans = otlp_receiver.wait_for_spans(5)
    assert sorted(span.name for span in spans) == [
        "request",
        "step-0",
        "step-1",
        "step-2",
        "step-3",
    ]
    request = otlp_receiver.requests[0]
    assert request.headers["x-api-key"] == "abc def"
    resource = request.request.resource_spans[0].resource
    attributes = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert attributes["service.name"] == "checkout"


def _exit_is_bounded(env: dict[str, str], app: str) -> str:
    # Exports without a limit of their own: only the shutdown bound can end the exit before the
    # timeout raises (bench/exit_collector_down.py measures how long the exit takes).
    env = {**env, "OTEL_EXPORTER_OTLP_TIMEOUT": "3600000", "OTEL_BSP_EXPORT_TIMEOUT": "0"}
    result = launch([PYTHON, app], env, timeout=60)
    assert result.returncode == 0, result.stderr
    match = EXIT_LINE.search(result.stderr)
    assert match is not None, result.stderr
    produced, exported, dropped = map(int, match.groups()[:3])
    assert (produced, exported, dropped) == (5, 0, 5)
    return result.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_with_the_collector_down_the_exit_stays_within_the_shutdown_timeout(
    app: str, protocol: str
) -> None:
    port = free_port()
    env = clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT=str(SHUTDOWN_MS),
    )
    stderr = _exit_is_bounded(env, app)
    warnings = [line for line in stderr.splitlines() if "retried with backoff" in line]
    assert len(warnings) <= 1  # throttled: not one line per retry
    assert all(f"127.0.0.1:{port}" in line for line in warnings)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_with_the_collector_hanging_the_exit_stays_within_the_shutdown_timeout(
    otlp_receiver: OTLPReceiver, app: str, protocol: str
) -> None:
    otlp_receiver.hang()
    endpoint = otlp_receiver.grpc_endpoint if protocol == "grpc" else otlp_receiver.http_base
    env = clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT=str(REACHING_SHUTDOWN_MS),
    )
    _exit_is_bounded(env, app)
    # The export did reach the receiver, which never answered (its server thread may record
    # the call after the app is gone).
    assert otlp_receiver.wait_for_attempts(1)


def test_the_wrong_port_is_one_clear_line(otlp_receiver: OTLPReceiver, app: str) -> None:
    env = clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_base,  # gRPC (the default) at HTTP
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT=str(REACHING_SHUTDOWN_MS),
    )
    result = launch([PYTHON, app], env, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "4317" in line]
    assert len(lines) == 1, result.stderr
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in lines[0]


def test_the_default_otlp_exporter_loads_no_transport_at_start_up() -> None:
    code = (
        "import sys\n"
        "print(sorted(m for m in ('grpc', 'google.protobuf', 'http.client', 'ssl',"
        " 'opentelemetry.proto') if m in sys.modules))\n"
    )
    env = clean_env(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    result = launch([PYTHON, "-c", code], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stderr
