"""``telemetry-run python client.py`` making aiohttp client calls: CLIENT spans over OTLP to
the real receiver."""

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

pytest.importorskip("aiohttp", reason="aiohttp is not installed (its matrix session)")

CLIENT = """
import asyncio
import sys
import aiohttp
from telemetry_run import trace

base = sys.argv[1]

async def main():
    async with aiohttp.ClientSession() as session:
        for path in ("/redirect", "/missing"):
            async with session.get(base + path, params={"api_key": "k"}) as response:
                print(response.status, await response.text())
        try:
            await session.get("http://127.0.0.1:9/")
        except aiohttp.ClientConnectionError as exc:
            print("refused")

with trace.get_tracer("client").start_as_current_span("job"):
    asyncio.run(main())
"""

CLIENT_KIND = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT


def _reply(path: str) -> Reply:
    if path.startswith("/redirect"):
        return 302, {"Location": "/ok"}, b""
    return (404 if path.startswith("/missing") else 200), {}, b"body"


@pytest.fixture
def downstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with downstream_server(_reply) as server:
        yield server


def test_aiohttp_calls_are_client_spans_and_carry_the_trace(
    otlp_receiver: OTLPReceiver, tmp_path: Path, downstream: tuple[str, list[dict[str, str]]]
) -> None:
    base, seen = downstream
    client = tmp_path / "client.py"
    client.write_text(textwrap.dedent(CLIENT))
    result = launch([PYTHON, str(client), base], otlp_env(otlp_receiver, OTEL_SERVICE_NAME="c"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "body", "404", "body", "refused"]
    spans = otlp_receiver.wait_for_spans(4, timeout=20)
    assert sorted(span.name for span in spans) == ["GET"] * 3 + ["job"]  # one per call
    [job] = [span for span in spans if span.name == "job"]
    calls = sorted(
        (span for span in spans if span.name == "GET"), key=lambda s: s.start_time_unix_nano
    )
    assert all(span.kind == CLIENT_KIND and span.parent_span_id == job.span_id for span in calls)
    redirected, missing, refused = (attributes(span) for span in calls)
    assert redirected["url.full"] == f"{base}/redirect?api_key=REDACTED"
    assert redirected["http.request.resend_count"] == 1
    assert missing["error.type"] == "404" and calls[1].status.code == 2
    assert refused["error.type"].startswith("aiohttp.client_exceptions.")
    # The redirect's two hops carry its span; the 404 its own.
    parents = [f"00-{span.trace_id.hex()}-{span.span_id.hex()}-03" for span in calls[:2]]
    assert [headers["traceparent"] for headers in seen] == [parents[0], parents[0], parents[1]]
