"""Starlette and FastAPI in-process (httpx's ASGI transport, Starlette's test client): the
SERVER span's name from the route template, status, streaming, exceptions, websockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fastapi
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.websockets import WebSocket

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.starlette import StarletteInstrumentor
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.sdk.trace.current import get_current_span
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.fixture
def recorder(span_recorder: SpanRecorder) -> Iterator[SpanRecorder]:
    instrumentor = StarletteInstrumentor()
    instrumentor.instrument(span_recorder.provider, config_for(plugin, {}))
    yield span_recorder
    instrumentor.uninstrument()


def make_fastapi(recorder: SpanRecorder) -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    tracer = recorder.provider.get_tracer("app")
    items = fastapi.APIRouter(prefix="/api")

    @items.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        with tracer.start_as_current_span("load_item"):
            pass
        return {"id": item_id, "span": f"{get_current_span().get_span_context().span_id:x}"}

    app.include_router(items)

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("kaput")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"
            with tracer.start_as_current_span("chunk"):
                yield b"b"

        return StreamingResponse(chunks())

    @app.get("/teapot")
    async def teapot() -> None:
        raise fastapi.HTTPException(418)

    @app.websocket("/ws/{room}")
    async def ws(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"{room}:{text}")
        await websocket.close()

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:  # until the client leaves: WebSocketDisconnect escapes the endpoint
            await websocket.send_text(await websocket.receive_text())

    sub = Starlette(routes=[Route("/users/{uid}", lambda request: PlainTextResponse("u"))])
    app.mount("/sub", sub)
    return app


def get(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            return await client.get(path, **kwargs)

    return asyncio.run(run())


def server_span(recorder: SpanRecorder) -> Any:
    (span,) = [s for s in recorder.spans if s.kind is SpanKind.SERVER]
    return span


def test_a_fastapi_request_is_one_server_span_named_from_the_route_template(
    recorder: SpanRecorder,
) -> None:
    response = get(make_fastapi(recorder), "/api/items/7?q=1", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    span = server_span(recorder)
    assert span.name == "GET /api/items/{item_id}"
    assert span.attributes["http.route"] == "/api/items/{item_id}"
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["url.path"] == "/api/items/7"
    assert span.attributes["url.query"] == "q=1"
    assert span.attributes["server.address"] == "shop.test"
    assert span.attributes["http.response.status_code"] == 200
    assert span.status.status_code is StatusCode.UNSET
    # The caller's trace is continued, and the app's own span is the server span's child.
    assert span.context.trace_id == TRACE_ID
    assert span.parent is not None and span.parent.span_id == PARENT_ID
    child = recorder.one("load_item")
    assert child.parent is not None and child.parent.span_id == span.context.span_id
    assert response.json()["span"] == f"{span.context.span_id:x}"


def test_a_route_in_a_mounted_app_has_the_mount_prefix(recorder: SpanRecorder) -> None:
    assert get(make_fastapi(recorder), "/sub/users/3").status_code == 200
    assert server_span(recorder).name == "GET /sub/users/{uid}"


def test_an_unmatched_path_keeps_the_method_alone(recorder: SpanRecorder) -> None:
    assert get(make_fastapi(recorder), "/nowhere/123").status_code == 404
    span = server_span(recorder)
    assert span.name == "GET"
    assert "http.route" not in span.attributes
    assert span.attributes["http.response.status_code"] == 404
    assert span.status.status_code is StatusCode.UNSET  # a 4xx is the client's


def test_an_http_exception_is_its_status(recorder: SpanRecorder) -> None:
    assert get(make_fastapi(recorder), "/teapot").status_code == 418
    span = server_span(recorder)
    assert span.name == "GET /teapot"
    assert span.attributes["http.response.status_code"] == 418


def test_an_unhandled_exception_is_recorded_and_a_500(recorder: SpanRecorder) -> None:
    assert get(make_fastapi(recorder), "/boom").status_code == 500
    span = server_span(recorder)
    assert span.name == "GET /boom"
    assert span.attributes["http.response.status_code"] == 500
    assert span.status.status_code is StatusCode.ERROR
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == "ValueError"


def test_a_streamed_response_ends_the_span_after_its_last_chunk(recorder: SpanRecorder) -> None:
    response = get(make_fastapi(recorder), "/stream")
    assert response.content == b"ab"
    span = server_span(recorder)
    chunk = recorder.one("chunk")
    assert chunk.parent is not None and chunk.parent.span_id == span.context.span_id
    assert span.end_time is not None and chunk.end_time is not None
    assert span.end_time >= chunk.end_time


def websocket_exchange(
    app: Any, path: str, text: str, *, leave: int | None = None
) -> list[dict[str, Any]]:
    """Connect, send ``text``, and collect what the app sends until it closes (or, with
    ``leave``, close from the client's side with that code after the first answer)."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return await incoming.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "websocket.accept":
            incoming.put_nowait({"type": "websocket.receive", "text": text})
        elif message["type"] == "websocket.send" and leave is not None:
            incoming.put_nowait({"type": "websocket.disconnect", "code": leave})

    async def run() -> None:
        incoming.put_nowait({"type": "websocket.connect"})
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"shop.test")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "subprotocols": [],
        }
        with contextlib.suppress(Exception):  # what escapes is the server's to handle
            await asyncio.wait_for(app(scope, receive, send), 30)

    asyncio.run(run())
    return sent


def test_a_websocket_connection_is_one_server_span(recorder: SpanRecorder) -> None:
    sent = websocket_exchange(make_fastapi(recorder), "/ws/lobby", "hi")
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == "lobby:hi"
    span = server_span(recorder)
    assert span.name == "GET /ws/{room}"
    assert span.attributes["url.scheme"] == "ws"
    assert span.attributes["http.response.status_code"] == 101
    assert span.end_time is not None


def test_a_client_leaving_a_websocket_normally_is_no_error(recorder: SpanRecorder) -> None:
    sent = websocket_exchange(make_fastapi(recorder), "/echo", "hi", leave=1001)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send"]
    span = server_span(recorder)
    assert span.name == "GET /echo"
    assert span.status.status_code is StatusCode.UNSET
    assert [e.name for e in span.events] == []
    assert span.end_time is not None


def test_a_plain_starlette_app_is_traced_too(recorder: SpanRecorder) -> None:
    app = Starlette(
        routes=[
            Route("/hello/{name}", lambda request: PlainTextResponse("hi")),
            Mount("/v1", routes=[Route("/things/{tid}", lambda r: PlainTextResponse("t"))]),
        ]
    )
    assert get(app, "/hello/bob").status_code == 200
    assert get(app, "/v1/things/9").status_code == 200
    names = sorted(s.name for s in recorder.spans if s.kind is SpanKind.SERVER)
    assert names == ["GET /hello/{name}", "GET /v1/things/{tid}"]


def test_an_excluded_url_gets_no_span(span_recorder: SpanRecorder) -> None:
    instrumentor = StarletteInstrumentor()
    environ = {"OTEL_PYTHON_STARLETTE_EXCLUDED_URLS": "/api/items"}
    instrumentor.instrument(span_recorder.provider, config_for(plugin, environ))
    try:
        app = make_fastapi(span_recorder)
        assert get(app, "/api/items/1").status_code == 200
        assert get(app, "/teapot").status_code == 418
    finally:
        instrumentor.uninstrument()
    assert [s.name for s in span_recorder.spans if s.kind is SpanKind.SERVER] == ["GET /teapot"]


contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "starlette"),
    exercise="tests.unit.instrumentors.exercises:starlette_request",
)


EXCLUDED = "OTEL_PYTHON_STARLETTE_EXCLUDED_URLS"


def test_fastapi_own_telemetry_makes_no_second_server_span(
    span_recorder: SpanRecorder,
) -> None:
    """FastAPI's native telemetry traces through the OpenTelemetry API once a provider is set,
    and the API bridge (on under telemetry-run) makes its spans ours: it must stand aside."""
    fastapi = pytest.importorskip("fastapi", reason="FastAPI is not installed (its matrix session)")
    pytest.importorskip(
        "fastapi.telemetry",
        reason=f"FastAPI {fastapi.__version__} predates fastapi.telemetry (its own spans): "
        "nothing to stand aside from in this version",
    )
    from opentelemetry import trace as otel_trace
    from opentelemetry.util._once import Once

    from telemetry_run.instrumentors.opentelemetry_api import OpenTelemetryApiInstrumentor

    bridge = OpenTelemetryApiInstrumentor()
    bridge.instrument(span_recorder.provider, config_for(plugin, {}))
    ours = StarletteInstrumentor()
    ours.instrument(span_recorder.provider, config_for(plugin, {EXCLUDED: "/teapot"}))
    try:
        app = make_fastapi(span_recorder)
        assert app._native_telemetry.enabled()  # it would trace, were it not told not to
        assert get(app, "/api/items/7").status_code == 200
        assert get(app, "/teapot").status_code == 418  # excluded: no span of FastAPI's either
    finally:
        ours.uninstrument()
        bridge.uninstrument()
        otel_trace._TRACER_PROVIDER = None
        otel_trace._TRACER_PROVIDER_SET_ONCE = Once()
    assert server_span(span_recorder).name == "GET /api/items/{item_id}"
    assert not [s for s in span_recorder.spans if "teapot" in str(s.attributes.get("url.path"))]


def test_allow_listed_headers_are_captured_and_sensitive_ones_redacted(
    span_recorder: SpanRecorder,
) -> None:
    instrumentor = StarletteInstrumentor()
    environ = {
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-request-id,authorization",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "content-type",
    }
    instrumentor.instrument(span_recorder.provider, config_for(plugin, environ))
    try:
        headers = {"x-request-id": "r-1", "authorization": "Bearer secret"}
        assert get(make_fastapi(span_recorder), "/api/items/1", headers=headers).status_code == 200
    finally:
        instrumentor.uninstrument()
    attributes = server_span(span_recorder).attributes
    assert attributes["http.request.header.x-request-id"] == ("r-1",)
    assert attributes["http.request.header.authorization"] == ("[REDACTED]",)
    assert attributes["http.response.header.content-type"] == ("application/json",)


def test_a_failure_of_ours_never_reaches_the_app(
    recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telemetry_run.instrumentors import _asgi

    def broken(self: Any, message: Any) -> None:
        raise RuntimeError("bug in telemetry-run")

    monkeypatch.setattr(_asgi.AsgiRequest, "note", broken)
    response = get(make_fastapi(recorder), "/api/items/3")
    assert (response.status_code, response.json()["id"]) == (200, 3)
    assert {error.where for error in recorder.internal_errors} == {"starlette: response"}
    recorder.internal_errors.clear()  # expected: the span_recorder fixture fails on others
    assert server_span(recorder).end_time is not None  # still ended, with the body
