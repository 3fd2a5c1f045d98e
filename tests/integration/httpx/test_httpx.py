"""``telemetry-run python client.py`` making httpx calls (sync, async, streamed): CLIENT spans
over OTLP to the real receiver."""

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

pytest.importorskip("httpx", reason="httpx is not installed (the httpx matrix session)")

CLIENT = """
import asyncio
import sys
import httpx
from telemetry_run import trace

base = sys.argv[1]

async def fetch():
    async with httpx.AsyncClient(timeout=10) as client:
        return (await client.get(base + "/async")).status_code

with trace.get_tracer("client").start_as_current_span("job"):
    print(httpx.get(base + "/ok", params={"api_key": "k"}, timeout=10).status_code)
    print(asyncio.run(fetch()))
    with httpx.stream("GET", base + "/missing", timeout=10) as response:
        print(response.status_code, response.read().decode())
    try:
        httpx.get("http://127.0.0.1:9/", timeout=5)
    except httpx.ConnectError as exc:
        print(type(exc).__name__)
"""

CLIENT_KIND = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT


def _reply(path: str) -> Reply:
    return (404 if path.startswith("/missing") else 200), {}, b"body"


@pytest.fixture
def downstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with downstream_server(_reply) as server:
        yield server


def test_httpx_calls_are_client_spans_and_carry_the_trace(
    otlp_receiver: OTLPReceiver, tmp_path: Path, downstream: tuple[str, list[dict[str, str]]]
) -> None:
    base, seen = downstream
    client = tmp_path / "client.py"
    client.write_text(textwrap.dedent(CLIENT))
    env = otlp_env(otlp_receiver, OTEL_SERVICE_NAME="client")
    result = launch([PYTHON, str(client), base], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "200", "404", "body", "ConnectError"]
    spans = otlp_receiver.wait_for_spans(5, timeout=20)
    assert sorted(span.name for span in spans) == ["GET"] * 4 + ["job"]  # ours only
    [job] = [span for span in spans if span.name == "job"]
    calls = sorted(
        (span for span in spans if span.name == "GET"), key=lambda s: s.start_time_unix_nano
    )
    assert all(span.kind == CLIENT_KIND and span.parent_span_id == job.span_id for span in calls)
    ok, in_async, streamed, refused = (attributes(span) for span in calls)
    assert ok["url.full"] == f"{base}/ok?api_key=REDACTED"
    assert in_async["url.full"] == f"{base}/async"
    assert streamed["error.type"] == "404" and calls[2].status.code == 2
    assert refused["error.type"] == "httpx.ConnectError"
    assert [headers["traceparent"] for headers in seen] == [
        f"00-{span.trace_id.hex()}-{span.span_id.hex()}-03" for span in calls[:3]
    ]
