"""The redis instrumentor against a real redis-server on 127.0.0.1 (sync, asyncio, pipelines)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis", reason="the redis package (redis-py) is not installed")
import redis
import redis.asyncio

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.redis import RedisInstrumentor, query_text
from telemetry_run.sdk.context import suppress_instrumentation
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests
from tests.redis_server import RedisServer, running_redis_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis_server(tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Any]:
    made: list[RedisInstrumentor] = []

    def instrument(**environ: str) -> SpanRecorder:
        instrumentor = RedisInstrumentor()
        instrumentor.instrument(span_recorder.provider, config_for(plugin, environ))
        made.append(instrumentor)
        return span_recorder

    yield instrument
    for instrumentor in made:
        instrumentor.uninstrument()


def _client(server: RedisServer, db: int = 0) -> Any:
    return redis.Redis(host=server.host, port=server.port, db=db)


def test_a_command_is_one_client_span_without_its_values(instrument: Any, server: Any) -> None:
    recorder = instrument()
    client = _client(server, db=3)
    with recorder.tracer.start_as_current_span("checkout") as parent:
        assert client.set("user:1", "secret-value") is True
        assert client.get("user:1") == b"secret-value"
    set_span, get_span = recorder.by_name("SET")[0], recorder.one("GET")
    assert get_span.kind is SpanKind.CLIENT
    assert get_span.parent is not None
    assert get_span.parent.span_id == parent.get_span_context().span_id
    assert dict(get_span.attributes) == {
        "db.system.name": "redis",
        "db.operation.name": "GET",
        "db.query.text": "GET ?",
        "db.namespace": "3",
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    assert set_span.attributes["db.query.text"] == "SET ? ?"
    assert get_span.status.is_unset


def test_keys_are_kept_only_when_asked(instrument: Any, server: Any) -> None:
    recorder = instrument(TELEMETRY_RUN_REDIS_CAPTURE_KEYS="true")
    client = _client(server)
    client.set("user:1", "secret-value")
    client.mset({"a": "1", "b": "2"})
    client.mget("a", "b")
    client.hset("h", "field", "secret-value")
    texts = [span.attributes["db.query.text"] for span in recorder.spans]
    assert texts == ["SET user:1 ?", "MSET a ? b ?", "MGET a b", "HSET h ? ?"]
    assert not any("secret-value" in text for text in texts)


def test_a_pipeline_is_one_span_with_its_command_count(instrument: Any, server: Any) -> None:
    recorder = instrument()
    client = _client(server)
    with client.pipeline(transaction=False) as pipe:
        pipe.set("p", "1").incr("p").get("p")
        assert pipe.execute() == [True, 2, b"2"]
    with client.pipeline() as pipe:  # a transaction: MULTI ... EXEC
        pipe.incr("p").incr("p")
        assert pipe.execute() == [3, 4]
    with client.pipeline() as pipe:
        assert pipe.execute() == []  # nothing sent: no span
    pipeline, transaction = recorder.spans
    assert pipeline.name == "PIPELINE" and transaction.name == "MULTI"
    assert pipeline.attributes["db.operation.batch.size"] == 3
    assert pipeline.attributes["db.query.text"] == "SET ? ?\nINCRBY ? ?\nGET ?"  # incr sends INCRBY
    assert transaction.attributes["db.operation.batch.size"] == 2
    assert pipeline.kind is SpanKind.CLIENT


def test_a_server_error_is_recorded_and_raised_unchanged(instrument: Any, server: Any) -> None:
    recorder = instrument()
    client = _client(server)
    client.set("text", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.lpush("text", "y")
    span = recorder.one("LPUSH")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["db.response.status_code"] == "WRONGTYPE"
    assert span.attributes["error.type"] == "redis.exceptions.ResponseError"
    assert [event.name for event in span.events] == ["exception"]


def test_an_unreachable_server_is_an_error_span(instrument: Any, tmp_path: Path) -> None:
    recorder = instrument()
    with running_redis_server(tmp_path) as gone:
        port = gone.port
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        socket_connect_timeout=5,
    )
    with pytest.raises(redis.ConnectionError):
        client.ping()
    span = recorder.one("PING")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "redis.exceptions.ConnectionError"


def test_asyncio_commands_and_pipelines(instrument: Any, server: Any) -> None:
    recorder = instrument()

    async def work() -> list[Any]:
        client = redis.asyncio.Redis(host=server.host, port=server.port, db=1)
        try:
            with recorder.tracer.start_as_current_span("job"):
                await client.set("k", "v")
                got = await client.get("k")
                async with client.pipeline(transaction=False) as pipe:
                    pipe.get("k").exists("k")
                    results = await pipe.execute()
            return [got, results]
        finally:
            await client.aclose()

    assert asyncio.run(work()) == [b"v", [b"v", 1]]
    job = recorder.one("job")
    spans = [span for span in recorder.spans if span.name != "job"]
    assert [span.name for span in spans] == ["SET", "GET", "PIPELINE"]
    assert all(
        span.parent is not None and span.parent.span_id == job.context.span_id for span in spans
    )
    assert spans[1].attributes["db.namespace"] == "1"
    assert spans[2].attributes["db.operation.batch.size"] == 2


def test_nothing_is_traced_when_suppressed(instrument: Any, server: Any) -> None:
    recorder = instrument()
    client = _client(server)
    with suppress_instrumentation():
        client.ping()
    assert recorder.spans == ()


def test_uninstrument_stops_the_spans(span_recorder: SpanRecorder, server: Any) -> None:
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(span_recorder.provider, config_for(plugin, {}))
    client = _client(server)
    client.ping()
    instrumentor.uninstrument()
    client.ping()
    assert [span.name for span in span_recorder.spans] == ["PING"]


def test_query_text_never_records_values() -> None:
    assert query_text(("get", b"key"), capture_keys=False) == "GET ?"
    assert query_text((b"DEL", b"k1", "k2"), capture_keys=True) == "DEL k1 k2"
    assert query_text(("AUTH", "user", "password"), capture_keys=True) == "AUTH ? ?"
    assert query_text(("CLIENT SETNAME", "me"), capture_keys=True) == "CLIENT SETNAME ?"
    assert query_text(("PING",), capture_keys=True) == "PING"


contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "redis"),
    exercise="tests.unit.instrumentors.exercises:redis_command",
)


def _broker_code(client: Any) -> Any:
    """A function whose module is kombu's, as the transport's own code is."""
    namespace: dict[str, Any] = {"__name__": "kombu.transport.redis_like"}
    exec("def poll(client):\n    return client.lpush('q', 'm')\n", namespace)
    return namespace["poll"]


@pytest.mark.parametrize("root_spans", ["", "true"])
def test_a_brokers_own_commands_are_traced_only_inside_a_span(
    instrument: Any, server: Any, root_spans: str
) -> None:
    recorder = instrument(TELEMETRY_RUN_REDIS_BROKER_ROOT_SPANS=root_spans)
    broker_client, app_client = _client(server), _client(server)
    poll = _broker_code(broker_client)
    poll(broker_client)  # the pool's first command: kombu's, outside any span
    broker_client.get("k")  # the same pool, from anywhere: still the broker's
    app_client.get("k")  # the application's own pool: traced as ever
    with recorder.tracer.start_as_current_span("publish") as parent:
        poll(broker_client)
    names = [span.name for span in recorder.spans if span.name != "publish"]
    if root_spans:
        assert names == ["LPUSH", "GET", "GET", "LPUSH"]
    else:
        assert names == ["GET", "LPUSH"]
        assert recorder.one("LPUSH").parent.span_id == parent.get_span_context().span_id
        assert recorder.one("GET").parent is None
