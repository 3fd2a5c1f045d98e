"""``telemetry-run python app.py`` using redis-py against a real redis-server: spans over OTLP."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.apps import attributes, otlp_env
from tests.integration.conftest import PYTHON, launch
from tests.redis_server import RedisServer, running_redis_server

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("redis", reason="the redis package (redis-py) is not installed")

APP = """
import asyncio
import sys

import redis
import redis.asyncio
from telemetry_run import trace

port = int(sys.argv[1])
client = redis.Redis(host="127.0.0.1", port=port, db=2)
with trace.get_tracer("app").start_as_current_span("job"):
    client.set("session:42", "s3cr3t")
    print(client.get("session:42").decode())
    with client.pipeline() as pipe:
        pipe.delete("hits").incr("hits").get("hits")
        print(pipe.execute()[-1].decode())
    try:
        client.lpush("session:42", "x")
    except redis.ResponseError as exc:
        print(str(exc).split()[0])

    async def main():
        async_client = redis.asyncio.Redis(host="127.0.0.1", port=port, db=2)
        try:
            return (await async_client.get("session:42")).decode()
        finally:
            await async_client.aclose()

    print(asyncio.run(main()))
"""

CLIENT_KIND = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis_server(tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.mark.parametrize("capture_keys", ["false", "true"])
def test_commands_and_a_pipeline_are_client_spans_in_the_apps_trace(
    otlp_receiver: OTLPReceiver, tmp_path: Path, server: RedisServer, capture_keys: str
) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    env = otlp_env(
        otlp_receiver,
        OTEL_SERVICE_NAME="cache-user",
        TELEMETRY_RUN_REDIS_CAPTURE_KEYS=capture_keys,
    )
    result = launch([PYTHON, str(app), str(server.port)], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["s3cr3t", "1", "WRONGTYPE", "s3cr3t"]
    spans = otlp_receiver.wait_for_spans(6, timeout=20)
    by_start = sorted(spans, key=lambda span: span.start_time_unix_nano)
    assert [span.name for span in by_start] == ["job", "SET", "GET", "MULTI", "LPUSH", "GET"]
    job, set_, get, multi, lpush, async_get = by_start
    for span in by_start[1:]:
        assert span.kind == CLIENT_KIND
        assert span.trace_id == job.trace_id and span.parent_span_id == job.span_id
        found = attributes(span)
        assert found["db.system.name"] == "redis" and found["db.namespace"] == "2"
        assert found["server.address"] == "127.0.0.1"
        assert found["server.port"] == server.port
        assert "s3cr3t" not in found["db.query.text"]  # values never leave the process
    key = "session:42" if capture_keys == "true" else "?"
    assert attributes(set_)["db.query.text"] == f"SET {key} ?"
    assert attributes(async_get)["db.query.text"] == f"GET {key}"
    hits = "hits" if capture_keys == "true" else "?"
    assert attributes(multi)["db.operation.batch.size"] == 3
    assert attributes(multi)["db.query.text"] == f"DEL {hits}\nINCRBY {hits} ?\nGET {hits}"
    assert lpush.status.code == 2  # ERROR
    assert attributes(lpush)["db.response.status_code"] == "WRONGTYPE"
    assert get.status.code == 0
