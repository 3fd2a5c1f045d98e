"""A FastAPI app under uvicorn (alone, ``--workers 2``, ``--reload``) and gunicorn's
UvicornWorker, run by telemetry-run with no code change: one SERVER span per request, named
from the route template, exported over OTLP to the real receiver."""

from __future__ import annotations

import importlib.util
import os
import textwrap
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import attributes, otlp_env, script, served

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytestmark = pytest.mark.timeout(180)

APP = """
import asyncio

import fastapi
from fastapi.responses import StreamingResponse
from telemetry_run import trace

app = fastapi.FastAPI()
tracer = trace.get_tracer("shop")


@app.get("/items/{item_id}")
async def item(item_id: int):
    with tracer.start_as_current_span("load_item"):
        return {"id": item_id}


@app.get("/boom")
async def boom():
    raise ValueError("kaput")


@app.get("/stream")
async def stream():
    async def chunks():
        for i in range(3):
            await asyncio.sleep(0.01)
            with tracer.start_as_current_span("chunk"):
                yield f"{i},"
    return StreamingResponse(chunks(), media_type="text/plain")


@app.websocket("/ws/{room}")
async def ws(websocket: fastapi.WebSocket, room: str):
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(f"{room}:{text}")
    await websocket.close()
"""

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
SERVER = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER
ERROR = 2  # Status.STATUS_CODE_ERROR


def requires(*modules: str) -> None:
    """Skip unless every package is importable; in CI (CI=true) a missing one fails."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            if os.environ.get("CI", "").lower() in ("true", "1"):
                pytest.fail(f"CI must run the ASGI server tests: {module} is not installed")
            pytest.skip(f"{module} is not installed (the asgi matrix session installs it)")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Connection": "close", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def command(server: str, port: int) -> list[str]:
    where = ["--host", "127.0.0.1", "--port", str(port)]
    if server == "gunicorn-uvicorn-worker":
        bind = ["--bind", f"127.0.0.1:{port}", "--workers", "2"]
        return [script("gunicorn"), *bind, "-k", "uvicorn.workers.UvicornWorker", "app:app"]
    options = {
        "uvicorn": [],
        "uvicorn-workers": ["--workers", "2"],
        "uvicorn-reload": ["--reload", "--reload-dir", "."],
    }[server]
    return [script("uvicorn"), "app:app", *where, *options]


SERVERS = ["uvicorn", "uvicorn-workers", "uvicorn-reload", "gunicorn-uvicorn-worker"]


@pytest.mark.parametrize("server", SERVERS)
def test_fastapi_requests_are_one_server_span_each(
    otlp_receiver: OTLPReceiver, tmp_path: Path, server: str
) -> None:
    requires("fastapi", "uvicorn", *(["gunicorn"] if server.startswith("gunicorn") else []))
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    env = otlp_env(otlp_receiver, OTEL_SERVICE_NAME="shop", PYTHONPATH=str(tmp_path))
    with served(command(server, port), port=port, env=env, cwd=tmp_path) as app:
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        assert get(app.url("/items/42"), {"traceparent": traceparent}) == (200, b'{"id":42}')
        assert get(app.url("/boom"))[0] == 500
        assert get(app.url("/nowhere"))[0] == 404
        assert get(app.url("/stream")) == (200, b"0,1,2,")
        # 4 SERVER spans, load_item, 3 chunks.
        otlp_receiver.wait_for_spans(8, timeout=30)
        app.stop()
        log = app.log()
    spans = otlp_receiver.spans()  # with whatever the exit flushed: a second span would show
    assert "internal error" not in log, log  # nothing of ours failed
    assert "telemetry-run: spans produced" not in log, log  # nothing was lost
    servers = [span for span in spans if span.kind == SERVER]
    names = Counter(span.name for span in servers)
    assert names == Counter(["GET /items/{item_id}", "GET /boom", "GET", "GET /stream"]), names
    by_name = {span.name: span for span in servers}

    item = by_name["GET /items/{item_id}"]
    assert item.trace_id.hex() == TRACE_ID and item.parent_span_id.hex() == PARENT_ID
    item_attributes = attributes(item)
    assert item_attributes["http.route"] == "/items/{item_id}"
    assert item_attributes["http.response.status_code"] == 200
    assert item_attributes["url.path"] == "/items/42"
    assert item_attributes["server.port"] == port
    (load_item,) = [span for span in spans if span.name == "load_item"]
    assert load_item.parent_span_id == item.span_id

    boom = by_name["GET /boom"]
    assert boom.status.code == ERROR
    assert attributes(boom)["http.response.status_code"] == 500
    assert [event.name for event in boom.events] == ["exception"]

    assert attributes(by_name["GET"])["http.response.status_code"] == 404

    stream = by_name["GET /stream"]
    chunks = [span for span in spans if span.name == "chunk"]
    assert len(chunks) == 3
    assert all(chunk.parent_span_id == stream.span_id for chunk in chunks)
    assert stream.end_time_unix_nano >= max(chunk.end_time_unix_nano for chunk in chunks)


def test_a_websocket_connection_is_one_server_span(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    requires("fastapi", "uvicorn", "websockets")
    from websockets.sync.client import connect

    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    env = otlp_env(otlp_receiver, PYTHONPATH=str(tmp_path))
    with served(command("uvicorn", port), port=port, env=env, cwd=tmp_path) as app:
        with connect(f"ws://127.0.0.1:{port}/ws/lobby", open_timeout=15) as websocket:
            websocket.send("hi")
            assert websocket.recv(timeout=15) == "lobby:hi"
        spans: list[Any] = otlp_receiver.wait_for_spans(1, timeout=30)
        app.stop()
    (span,) = [span for span in spans if span.kind == SERVER]
    assert span.name == "GET /ws/{room}"
    span_attributes = attributes(span)
    assert span_attributes["url.scheme"] == "ws"
    assert span_attributes["http.response.status_code"] == 101
