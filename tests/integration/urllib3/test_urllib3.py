"""``telemetry-run python client.py`` calling with urllib3 and with requests over urllib3: one
CLIENT span per logical call, over OTLP to the real receiver."""

from __future__ import annotations

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

pytest.importorskip("urllib3", reason="urllib3 is not installed (its matrix session)")
pytest.importorskip("requests", reason="requests is not installed (the urllib3 session has it)")

CLIENT = """
import sys
import requests
import urllib3
from telemetry_run import trace

base = sys.argv[1]
with trace.get_tracer("client").start_as_current_span("job"):
    with urllib3.PoolManager() as manager:
        print(manager.request("GET", base + "/redirect").status)
    print(requests.get(base + "/redirect", timeout=10).status_code)
"""

CLIENT_KIND = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT


def _reply(path: str) -> Reply:
    return (302, {"Location": "/ok"}, b"") if path == "/redirect" else (200, {}, b"")


@pytest.fixture
def downstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with downstream_server(_reply) as server:
        yield server


def test_each_logical_call_is_one_client_span(
    otlp_receiver: OTLPReceiver, tmp_path: Path, downstream: tuple[str, list[dict[str, str]]]
) -> None:
    base, seen = downstream
    client = tmp_path / "client.py"
    client.write_text(textwrap.dedent(CLIENT))
    result = launch([PYTHON, str(client), base], otlp_env(otlp_receiver, OTEL_SERVICE_NAME="c"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "200"]
    spans = otlp_receiver.wait_for_spans(3, timeout=20)
    assert sorted(span.name for span in spans) == ["GET", "GET", "job"]  # no span per hop
    [job] = [span for span in spans if span.name == "job"]
    calls = sorted(
        (span for span in spans if span.name == "GET"), key=lambda s: s.start_time_unix_nano
    )
    assert all(span.kind == CLIENT_KIND and span.parent_span_id == job.span_id for span in calls)
    for call in calls:
        assert attributes(call)["url.full"] == f"{base}/redirect"
        assert attributes(call)["http.request.resend_count"] == 1
    # Four requests reached the server, two hops per call, each carrying its call's span.
    assert [headers["traceparent"] for headers in seen] == [
        f"00-{span.trace_id.hex()}-{span.span_id.hex()}-03" for span in calls for _ in range(2)
    ]
