"""The instrumentors' duration histograms: one measurement per traced call, sampled or not,
with the conventions' low-cardinality attributes and an exemplar linking to a sampled trace."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import grpc
import pytest
import requests

from telemetry_run.instrumentors import _call_metrics, _http, plugin, toolkit
from telemetry_run.instrumentors._call_metrics import CallMetrics
from telemetry_run.instrumentors.flask import FlaskInstrumentor
from telemetry_run.instrumentors.grpc import GrpcInstrumentor
from telemetry_run.instrumentors.requests import RequestsInstrumentor
from telemetry_run.instrumentors.sqlite3 import Sqlite3Instrumentor
from telemetry_run.instrumentors.urllib3 import Urllib3Instrumentor
from telemetry_run.sdk import Diagnostics
from telemetry_run.sdk.metrics import MeterProvider
from telemetry_run.sdk.metrics.data import HistogramDataPoint, Metric
from telemetry_run.sdk.resources import Resource
from telemetry_run.sdk.trace.api import SpanKind
from telemetry_run.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased
from telemetry_run.testing import SpanRecorder, config_for
from tests.unit.instrumentors import grpc_support
from tests.unit.instrumentors.grpc_support import WAIT
from tests.unit.instrumentors.test_requests import server  # noqa: F401  # a fixture
from tests.unit.sdk.metrics_helpers import MetricsRig, make_rig

HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
DB_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> MetricsRig:
    """A metrics provider with an in-memory reader, recording every toolkit call's duration."""
    rig = make_rig(Diagnostics())
    monkeypatch.setattr(toolkit, "CALL_END_HOOKS", [CallMetrics(rig.provider)])
    return rig


@pytest.fixture
def instrumented() -> Iterator[Any]:
    """Instrument with a given recorder; every instrumentor is uninstrumented after the test."""
    made: list[Any] = []

    def instrument(kind: type[Any], recorder: SpanRecorder, **environ: str) -> None:
        instrumentor = kind()
        instrumentor.instrument(recorder.provider, config_for(plugin, environ))
        made.append(instrumentor)

    yield instrument
    for instrumentor in reversed(made):
        instrumentor.uninstrument()


def points(metric: Metric) -> list[HistogramDataPoint]:
    return list(metric.data.data_points)  # type: ignore[arg-type]


def shop() -> flask.Flask:
    app = flask.Flask("shop")

    @app.route("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @app.route("/boom")
    def boom() -> str:
        raise ValueError("kaput")

    return app


def fetch(client: Any, path: str) -> int:
    """A test-client request read to the end and closed, as a WSGI server does."""
    response = client.get(path)
    response.get_data()
    response.close()
    return int(response.status_code)


# -- HTTP server --------------------------------------------------------------------------------


def test_a_flask_request_is_measured_with_the_route_template_never_the_path(
    rig: MetricsRig, instrumented: Any, span_recorder: SpanRecorder
) -> None:
    instrumented(FlaskInstrumentor, span_recorder)
    client = shop().test_client()
    for user_id in (1, 2, 3):
        assert fetch(client, f"/users/{user_id}?token=s3cret") == 200
    metric = rig.metric("http.server.request.duration")
    assert metric.unit == "s"
    (point,) = points(metric)
    assert point.attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "http.route": "/users/<int:user_id>",
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }
    assert point.count == 3
    assert list(point.explicit_bounds) == HTTP_BUCKETS


def test_a_failed_request_has_error_type_and_an_unknown_route_no_route(
    rig: MetricsRig, instrumented: Any, span_recorder: SpanRecorder
) -> None:
    instrumented(FlaskInstrumentor, span_recorder)
    client = shop().test_client()
    assert fetch(client, "/boom") == 500
    assert fetch(client, "/nowhere/42") == 404
    by_status = {
        p.attributes["http.response.status_code"]: p.attributes
        for p in points(rig.metric("http.server.request.duration"))
    }
    assert by_status[500]["error.type"] == "500"  # as the span has it
    assert by_status[500]["http.route"] == "/boom"
    assert "error.type" not in by_status[404]  # a client's error, not the server's
    assert "http.route" not in by_status[404]
    assert not any("/nowhere" in str(v) for a in by_status.values() for v in a.values())


def test_sampled_out_requests_are_counted_and_only_sampled_ones_give_exemplars(
    rig: MetricsRig, instrumented: Any
) -> None:
    recorder = SpanRecorder(sampler=TraceIdRatioBased(0.1))
    instrumented(FlaskInstrumentor, recorder)
    client = shop().test_client()
    for user_id in range(100):
        assert fetch(client, f"/users/{user_id}") == 200
    (point,) = points(rig.metric("http.server.request.duration"))
    assert point.count == 100  # the request rate is right whatever the sampling
    exported = {(s.context.trace_id, s.context.span_id) for s in recorder.spans}
    assert len(exported) < 100
    assert {(e.trace_id, e.span_id) for e in point.exemplars} <= exported
    if exported:
        assert point.exemplars  # the last sampled request of its bucket is kept
    assert recorder.internal_errors == []


def test_nothing_sampled_is_still_counted_without_exemplars(
    rig: MetricsRig, instrumented: Any
) -> None:
    recorder = SpanRecorder(sampler=ALWAYS_OFF)
    instrumented(FlaskInstrumentor, recorder)
    client = shop().test_client()
    for _ in range(5):
        fetch(client, "/users/7")
    (point,) = points(rig.metric("http.server.request.duration"))
    assert point.count == 5
    assert point.attributes["http.route"] == "/users/<int:user_id>"  # learnt unsampled too
    assert point.exemplars == ()
    assert recorder.spans == ()


def test_a_sampled_request_carries_its_span_as_the_exemplar(
    rig: MetricsRig, instrumented: Any, span_recorder: SpanRecorder
) -> None:
    instrumented(FlaskInstrumentor, span_recorder)
    fetch(shop().test_client(), "/users/1")
    (point,) = points(rig.metric("http.server.request.duration"))
    (exemplar,) = point.exemplars
    (span,) = span_recorder.spans
    assert (exemplar.trace_id, exemplar.span_id) == (span.context.trace_id, span.context.span_id)


# -- HTTP client --------------------------------------------------------------------------------


def test_requests_over_urllib3_is_one_measurement_with_the_server_attributes(
    rig: MetricsRig,
    instrumented: Any,
    span_recorder: SpanRecorder,
    server: tuple[str, Any],  # noqa: F811  # the fixture imported above
) -> None:
    instrumented(RequestsInstrumentor, span_recorder)
    instrumented(Urllib3Instrumentor, span_recorder)
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    assert requests.get(f"{base}/ok?q=secret", timeout=10).status_code == 200
    assert requests.get(f"{base}/status/503", timeout=10).status_code == 503
    metric = rig.metric("http.client.request.duration")
    by_status = {p.attributes.get("http.response.status_code"): p for p in points(metric)}
    server_attributes = {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": port,
    }
    assert by_status.keys() == {200, 503}
    assert by_status[200].count == by_status[503].count == 1  # not once more for urllib3
    assert by_status[200].attributes == {**server_attributes, "http.response.status_code": 200}
    assert by_status[503].attributes == {
        **server_attributes,
        "http.response.status_code": 503,
        "error.type": "503",
    }
    assert len(span_recorder.spans) == 2  # one CLIENT span per logical call, as measured


def test_a_connection_error_is_measured_with_its_class_as_error_type(
    rig: MetricsRig, instrumented: Any, span_recorder: SpanRecorder
) -> None:
    instrumented(RequestsInstrumentor, span_recorder)
    with pytest.raises(requests.ConnectionError):
        requests.get("http://127.0.0.1:9/", timeout=5)  # discard port: refused
    (point,) = points(rig.metric("http.client.request.duration"))
    assert point.attributes == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": 9,
        "error.type": "requests.exceptions.ConnectionError",
    }


# -- databases ----------------------------------------------------------------------------------


def test_sqlite_statements_are_measured_by_operation_never_by_text(
    rig: MetricsRig, instrumented: Any, span_recorder: SpanRecorder
) -> None:
    instrumented(Sqlite3Instrumentor, span_recorder)
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE items (id INTEGER)")
        for value in range(3):
            connection.execute("SELECT id FROM items WHERE id = ?", (value,))
        with pytest.raises(sqlite3.OperationalError):
            connection.execute("SELECT nope FROM items")
    finally:
        connection.close()
    metric = rig.metric("db.client.operation.duration")
    assert metric.unit == "s"
    by_operation = {
        (p.attributes.get("db.operation.name"), "error.type" in p.attributes): p
        for p in points(metric)
    }
    selects = by_operation[("SELECT", False)]
    assert selects.count == 3
    assert selects.attributes == {
        "db.system.name": "sqlite",
        "db.namespace": ":memory:",
        "db.operation.name": "SELECT",
        "db.collection.name": "items",
    }
    assert list(selects.explicit_bounds) == DB_BUCKETS
    failed = by_operation[("SELECT", True)].attributes
    assert failed["error.type"] == "sqlite3.OperationalError"
    assert failed["db.response.status_code"] == str(sqlite3.SQLITE_ERROR)
    assert not any("db.query.text" in p.attributes for p in points(metric))


# -- the toolkit --------------------------------------------------------------------------------


def _site(recorder: SpanRecorder, **options: Any) -> toolkit.CallSite:
    return toolkit.client_call(
        recorder.tracer,
        "test client",
        attributes=lambda url: _http.client_request_attributes("GET", url),
        span_name="GET",
        rules=toolkit.HTTP_CLIENT,
        **options,
    )


def test_a_call_ended_in_another_frame_still_links_to_its_trace(
    rig: MetricsRig, span_recorder: SpanRecorder
) -> None:
    site = _site(span_recorder, metric="http.client.request.duration")
    call = site.start("http://example.com/")
    assert call is not None
    call.detach()  # as a gRPC done callback or a closed stream ends it: outside the context
    call.set_status_code(204)
    call.end()
    (point,) = points(rig.metric("http.client.request.duration"))
    (exemplar,) = point.exemplars
    assert exemplar.trace_id == call.span.get_span_context().trace_id
    assert exemplar.span_id == call.span.get_span_context().span_id


def test_a_suppressed_nested_call_is_not_measured_twice(
    rig: MetricsRig, span_recorder: SpanRecorder
) -> None:
    outer = _site(span_recorder, metric="http.client.request.duration")
    inner = _site(span_recorder, metric="http.client.request.duration")
    with outer.call("http://example.com/"), inner.call("http://example.com/"):
        pass
    (point,) = points(rig.metric("http.client.request.duration"))
    assert point.count == 1
    assert [s.kind for s in span_recorder.spans] == [SpanKind.CLIENT]


def test_a_site_without_a_metric_records_nothing(
    rig: MetricsRig, span_recorder: SpanRecorder
) -> None:
    with _site(span_recorder).call("http://example.com/"):
        pass
    assert not list(rig.collect().metrics())


def test_the_duration_is_the_calls_own_monotonic_time(
    rig: MetricsRig, span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _site(span_recorder, metric="http.client.request.duration")
    clock = iter([100.0, 100.25])  # the call's start, then its end
    monkeypatch.setattr(toolkit, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(_call_metrics, "perf_counter", lambda: next(clock))
    with site.call("http://a.example/"):
        pass
    (point,) = points(rig.metric("http.client.request.duration"))
    assert (point.count, point.sum) == (1, 0.25)


def test_rpc_durations_are_in_the_milliseconds_their_conventions_name(
    rig: MetricsRig, span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = toolkit.client_call(
        span_recorder.tracer,
        "grpc client",
        attributes=lambda: {
            "rpc.system": "grpc",
            "rpc.service": "demo.v1.Echo",
            "rpc.method": "Unary",
            "server.address": "127.0.0.1",
            "server.port": 50051,
        },
        span_name="demo.v1.Echo/Unary",
        rules=toolkit.RPC_CLIENT,
        layer="grpc",
        metric="rpc.client.duration",
    )
    clock = iter([10.0, 10.5])
    monkeypatch.setattr(toolkit, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(_call_metrics, "perf_counter", lambda: next(clock))
    with site.call() as call:
        call.set_status_code(5)  # NOT_FOUND: a client's error
    metric = rig.metric("rpc.client.duration")
    (point,) = points(metric)
    assert metric.unit == "ms"
    assert point.sum == 500.0
    assert point.attributes == {
        "rpc.system": "grpc",
        "rpc.service": "demo.v1.Echo",
        "rpc.method": "Unary",
        "server.address": "127.0.0.1",
        "server.port": 50051,
        "rpc.grpc.status_code": 5,
        "error.type": "NOT_FOUND",
    }


# -- off ----------------------------------------------------------------------------------------


def test_without_a_reader_the_recorder_is_off_and_creates_nothing(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = MeterProvider(resource=Resource({}))  # what OTEL_METRICS_EXPORTER=none leaves
    hook = CallMetrics(provider)
    monkeypatch.setattr(toolkit, "CALL_END_HOOKS", [hook])
    with _site(span_recorder, metric="http.client.request.duration").call("http://a.example/"):
        pass
    assert hook.off
    assert hook._recorders == {}  # no instrument was created


def test_the_process_recorder_turns_off_when_no_provider_has_readers(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telemetry_run.sdk.metrics import global_provider

    global_provider._reset_for_tests()
    try:
        hook = CallMetrics()  # the process's provider, looked up at the first call
        monkeypatch.setattr(toolkit, "CALL_END_HOOKS", [hook])
        with _site(span_recorder, metric="http.client.request.duration").call("http://a/"):
            pass
        assert hook.off
    finally:
        global_provider._reset_for_tests()


def test_a_site_installs_the_recorder_once_and_refuses_an_unknown_metric(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks: list[Any] = []
    monkeypatch.setattr(toolkit, "CALL_END_HOOKS", hooks)
    _site(span_recorder, metric="http.client.request.duration")
    _site(span_recorder, metric="db.client.operation.duration")
    assert [type(hook) for hook in hooks] == [CallMetrics]
    with pytest.raises(ValueError, match=r"http\.client\.duration"):
        _site(span_recorder, metric="http.client.duration")


def test_repeated_attributes_are_one_interned_set(
    rig: MetricsRig, span_recorder: SpanRecorder
) -> None:
    (hook,) = toolkit.CALL_END_HOOKS
    assert isinstance(hook, CallMetrics)
    site = _site(span_recorder, metric="http.client.request.duration")
    for _ in range(3):
        with site.call("http://example.com/x?page=1") as call:
            call.set_status_code(200)
    assert len(hook._interned["http.client.request.duration"]) == 1
    (point,) = points(rig.metric("http.client.request.duration"))
    assert point.count == 3


# -- gRPC ---------------------------------------------------------------------------------------


def _wait_for_counts(rig: MetricsRig, name: str, count: int) -> list[HistogramDataPoint]:
    """The points of ``name`` once they count ``count`` calls (a gRPC client call ends in
    grpc's callback thread); bounded, fails after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        found = [p for m in rig.collect().metrics() if m.name == name for p in points(m)]
        if sum(p.count for p in found) >= count:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: expected {count} calls, got {found}")
        time.sleep(0.01)


def test_grpc_calls_are_measured_on_both_sides_by_service_method_and_code(
    rig: MetricsRig, instrumented: Any, span_recorder: SpanRecorder
) -> None:
    instrumented(GrpcInstrumentor, span_recorder)
    with (
        grpc_support.serve() as (port, _),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        grpc_support.call(channel, "unary_unary")
        with pytest.raises(grpc.RpcError):
            grpc_support.call(channel, "unary_unary", b"abort:NOT_FOUND")
        with pytest.raises(grpc.RpcError):
            grpc_support.call(channel, "unary_unary", b"raise")
        client = _wait_for_counts(rig, "rpc.client.duration", 3)
        server = _wait_for_counts(rig, "rpc.server.duration", 3)
    method = {"rpc.system": "grpc", "rpc.service": "demo.v1.Echo", "rpc.method": "Unary"}
    target = {"server.address": "127.0.0.1", "server.port": port}
    assert sorted((p.attributes["rpc.grpc.status_code"], p.count) for p in client) == [
        (0, 1),
        (2, 1),
        (5, 1),
    ]
    by_code = {p.attributes["rpc.grpc.status_code"]: p.attributes for p in client}
    assert by_code[0] == {**method, **target, "rpc.grpc.status_code": 0}
    assert by_code[5] == {**method, **target, "rpc.grpc.status_code": 5, "error.type": "NOT_FOUND"}
    assert by_code[2]["error.type"] == "UNKNOWN"
    by_code = {p.attributes["rpc.grpc.status_code"]: p.attributes for p in server}
    assert by_code[0] == {**method, "rpc.grpc.status_code": 0}
    assert by_code[5] == {**method, "rpc.grpc.status_code": 5}  # the client's fault
    assert by_code[2] == {**method, "rpc.grpc.status_code": 2, "error.type": "UNKNOWN"}
    span_recorder.internal_errors.clear()  # none expected; the fixture checks the rest


# -- ASGI ---------------------------------------------------------------------------------------


def test_a_fastapi_request_unsampled_is_measured_with_its_route_template(
    rig: MetricsRig, instrumented: Any
) -> None:
    import asyncio

    import fastapi
    import httpx

    from telemetry_run.instrumentors.starlette import StarletteInstrumentor

    recorder = SpanRecorder(sampler=ALWAYS_OFF)  # the route is learnt without a recording span
    instrumented(StarletteInstrumentor, recorder)
    app = fastapi.FastAPI()

    @app.get("/api/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            return [(await client.get(f"/api/items/{n}")).status_code for n in range(3)]

    assert asyncio.run(run()) == [200, 200, 200]
    (point,) = points(rig.metric("http.server.request.duration"))
    assert point.count == 3
    assert point.attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "http.route": "/api/items/{item_id}",
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }
    assert recorder.spans == ()


# -- redis --------------------------------------------------------------------------------------


def test_redis_commands_are_measured_by_name_with_the_servers_error_prefix(
    rig: MetricsRig, instrumented: Any, span_recorder: SpanRecorder, tmp_path: Path
) -> None:
    redis = pytest.importorskip("redis", reason="the redis package (redis-py) is not installed")
    from telemetry_run.instrumentors.redis import RedisInstrumentor
    from tests.redis_server import running_redis_server

    instrumented(RedisInstrumentor, span_recorder)
    with running_redis_server(tmp_path) as redis_server:
        client = redis.Redis(host=redis_server.host, port=redis_server.port, db=2)
        client.set("user:1", "secret-value")
        client.set("user:2", "other-value")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            client.lpush("user:1", "y")
        client.close()
    target = {
        "db.system.name": "redis",
        "db.namespace": "2",
        "server.address": "127.0.0.1",
        "server.port": redis_server.port,
    }
    by_operation = {
        p.attributes["db.operation.name"]: p
        for p in points(rig.metric("db.client.operation.duration"))
    }
    assert by_operation.keys() == {"SET", "LPUSH"}
    assert by_operation["SET"].count == 2
    assert by_operation["SET"].attributes == {**target, "db.operation.name": "SET"}
    assert by_operation["LPUSH"].attributes == {
        **target,
        "db.operation.name": "LPUSH",
        "db.response.status_code": "WRONGTYPE",
        "error.type": "redis.exceptions.ResponseError",
    }
