"""``telemetry-run python client.py`` making requests calls: CLIENT spans over OTLP."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.apps import attributes, otlp_env
from tests.integration.conftest import PYTHON, launch
from tests.integration.downstream import Reply, downstream_server

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("requests")

CLIENT = """
import sys
import requests
from telemetry_run import trace

base = sys.argv[1]
with trace.get_tracer("client").start_as_current_span("job"):
    print(requests.get(base + "/ok", params={"api_key": "k"}, timeout=10).status_code)
    print(requests.get(base + "/missing", timeout=10).status_code)
    try:
        requests.get("http://127.0.0.1:9/", timeout=5)
    except requests.ConnectionError as exc:
        print(type(exc).__name__)
"""

CLIENT_KIND = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT


def _reply(path: str) -> Reply:
    return (404 if path.startswith("/missing") else 200), {}, json.dumps({"path": path}).encode()


@pytest.fixture
def downstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with downstream_server(_reply) as server:
        yield server


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_calls_are_client_spans_and_carry_the_trace(
    otlp_receiver: OTLPReceiver,
    tmp_path: Path,
    downstream: tuple[str, list[dict[str, str]]],
    protocol: str,
) -> None:
    base, seen = downstream
    client = tmp_path / "client.py"
    client.write_text(textwrap.dedent(CLIENT))
    endpoint = otlp_receiver.grpc_endpoint if protocol == "grpc" else otlp_receiver.http_base
    env = otlp_env(
        otlp_receiver,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="client",
    )
    result = launch([PYTHON, str(client), base], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "404", "ConnectionError"]
    spans = otlp_receiver.wait_for_spans(4, timeout=20)
    assert sorted(span.name for span in spans) == ["GET", "GET", "GET", "job"]  # ours only
    [job] = [span for span in spans if span.name == "job"]
    calls = sorted(
        (span for span in spans if span.name == "GET"), key=lambda s: s.start_time_unix_nano
    )
    assert all(span.kind == CLIENT_KIND and span.parent_span_id == job.span_id for span in calls)
    ok, missing, refused = (attributes(span) for span in calls)
    assert ok["url.full"] == f"{base}/ok?api_key=REDACTED"
    assert ok["http.response.status_code"] == 200 and calls[0].status.code == 0
    assert missing["error.type"] == "404" and calls[1].status.code == 2
    assert refused["error.type"] == "requests.exceptions.ConnectionError"
    # The downstream server saw each call's own span as its parent (flags 03: sampled, and a
    # trace id the launcher's SDK generated, so random-trace-id).
    assert [headers["traceparent"] for headers in seen] == [
        f"00-{span.trace_id.hex()}-{span.span_id.hex()}-03" for span in calls[:2]
    ]
