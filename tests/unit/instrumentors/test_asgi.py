"""The generic ASGI instrumentor in-process: what uvicorn's ``Config.load`` gives is traced, once
with Starlette's layer, not at all for the apps that have their own instrumentor (Django, WSGI)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.asgi import AsgiInstrumentor
from telemetry_run.instrumentors.starlette import StarletteInstrumentor
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests
from tests.unit.instrumentors.exercises import _asgi_get

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def recorder(span_recorder: SpanRecorder) -> Iterator[SpanRecorder]:
    instrumentor = AsgiInstrumentor()
    instrumentor.instrument(span_recorder.provider, config_for(plugin, {}))
    yield span_recorder
    instrumentor.uninstrument()


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    """A raw ASGI app: a streamed body in two chunks; /boom raises before responding."""
    if scope["path"] == "/boom":
        raise RuntimeError("kaput")
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-id", b"1")]})
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    await send({"type": "http.response.body", "body": b"b"})


def loaded(app: Any, **options: Any) -> Any:
    config = uvicorn.Config(app, lifespan="off", ws="none", **options)  # no websockets import
    config.load()
    return config.loaded_app


def server_spans(recorder: SpanRecorder) -> list[Any]:
    return [s for s in recorder.spans if s.kind is SpanKind.SERVER]


def test_a_raw_asgi_app_loaded_by_uvicorn_gets_a_server_span(recorder: SpanRecorder) -> None:
    app = loaded(raw_app)
    sent = asyncio.run(_asgi_get(app, "/items/1"))
    assert [m.get("body") for m in sent[1:]] == [b"a", b"b"]
    (span,) = server_spans(recorder)
    assert span.name == "GET"  # a raw app has no routes
    assert span.attributes["url.path"] == "/items/1"
    assert span.attributes["http.response.status_code"] == 201
    assert span.attributes["server.address"] == "contract.test"
    assert span.attributes["network.peer.address"] == "127.0.0.1"
    assert span.attributes["network.protocol.version"] == "1.1"
    assert span.end_time is not None


def test_an_exception_escaping_the_app_is_recorded(recorder: SpanRecorder) -> None:
    app = loaded(raw_app)
    with pytest.raises(RuntimeError, match="kaput"):
        asyncio.run(_asgi_get(app, "/boom"))
    (span,) = server_spans(recorder)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RuntimeError"
    assert [e.name for e in span.events] == ["exception"]


def test_the_caller_trace_is_continued(recorder: SpanRecorder) -> None:
    app = loaded(raw_app)

    async def with_traceparent(scope: Any, receive: Any, send: Any) -> None:
        scope["headers"].append((b"traceparent", TRACEPARENT.encode()))
        await app(scope, receive, send)

    asyncio.run(_asgi_get(with_traceparent, "/items/1"))
    (span,) = server_spans(recorder)
    assert f"{span.context.trace_id:032x}" == TRACEPARENT.split("-")[1]


def test_a_fastapi_app_under_both_layers_is_one_span_named_from_its_route(
    recorder: SpanRecorder,
) -> None:
    import fastapi

    starlette = StarletteInstrumentor()
    starlette.instrument(recorder.provider, config_for(plugin, {}))
    try:
        app = fastapi.FastAPI()

        @app.get("/items/{item_id}")
        async def item(item_id: int) -> int:
            return item_id

        asyncio.run(_asgi_get(loaded(app), "/items/1"))
    finally:
        starlette.uninstrument()
    (span,) = server_spans(recorder)
    assert span.name == "GET /items/{item_id}"
    assert span.instrumentation_scope.name == "telemetry_run.instrumentors.asgi"


def test_django_asgi_keeps_its_own_instrumentor(recorder: SpanRecorder) -> None:
    from django.core.handlers.asgi import ASGIHandler

    handler = ASGIHandler.__new__(ASGIHandler)  # not called: only what uvicorn gets is checked
    app = loaded(handler)
    assert app is handler or getattr(app, "app", None) is handler


@pytest.mark.filterwarnings("ignore:Uvicorn's native WSGI:DeprecationWarning")
def test_a_wsgi_app_keeps_its_own_instrumentor(recorder: SpanRecorder) -> None:
    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"1"]

    app = loaded(wsgi, interface="wsgi")
    assert type(app).__module__.startswith("uvicorn.")


def test_proxy_headers_give_the_client_and_the_host(recorder: SpanRecorder) -> None:
    app = loaded(raw_app, proxy_headers=False)

    async def behind_a_proxy(scope: Any, receive: Any, send: Any) -> None:
        scope["headers"] += [
            (b"x-forwarded-for", b"203.0.113.9, 10.0.0.1"),
            (b"x-forwarded-host", b"shop.example:8443"),
            (b"user-agent", b"curl/8"),
        ]
        await app(scope, receive, send)

    asyncio.run(_asgi_get(behind_a_proxy, "/items/1"))
    (span,) = server_spans(recorder)
    assert span.attributes["client.address"] == "203.0.113.9"
    assert span.attributes["network.peer.address"] == "127.0.0.1"
    assert span.attributes["server.address"] == "shop.example"
    assert span.attributes["server.port"] == 8443
    assert span.attributes["user_agent.original"] == "curl/8"


HEADER_NAMES = [b"traceparent", b"tracestate", b"baggage", b"host", b"x-forwarded-host"]
HEADER_NAMES += [b"x-forwarded-for", b"user-agent"]


# The recorder is instrumented once and cleared after each example.
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), st.binary(max_size=300)), max_size=8))
def test_any_incoming_headers_are_served_and_traced_once(
    recorder: SpanRecorder, headers: list[tuple[bytes, bytes]]
) -> None:
    """Hostile bytes in any header we read: the request is served, one span, nothing of ours
    fails (the span_recorder fixture fails the test on an internal error)."""
    app = loaded(raw_app, proxy_headers=False)

    async def with_headers(scope: Any, receive: Any, send: Any) -> None:
        scope["headers"] = headers
        await app(scope, receive, send)

    try:
        sent = asyncio.run(_asgi_get(with_headers, "/items/1"))
        assert sent[0]["status"] == 201
        assert len(server_spans(recorder)) == 1
        assert not recorder.internal_errors
    finally:
        recorder.clear()


contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "asgi"),
    exercise="tests.unit.instrumentors.exercises:uvicorn_loaded_app",
)
