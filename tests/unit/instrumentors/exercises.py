"""What the contract suite runs against each built-in instrumentor: one use of its patch points."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from typing import Any


def flask_request() -> None:
    import flask

    app = flask.Flask("contract")

    @app.route("/items/<int:item>")
    def item(item: int) -> str:
        return str(item)

    @app.route("/boom")
    def boom() -> str:
        raise ValueError("boom")

    client = app.test_client()
    assert client.get("/items/1").data == b"1"
    assert client.get("/boom").status_code == 500


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _ok_server() -> Iterator[str]:
    """A loopback HTTP server answering ``ok`` to every GET, for the clients; its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def requests_call() -> None:
    import requests

    with _ok_server() as url:
        assert requests.get(url, timeout=10).text == "ok"


def starlette_request() -> None:
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    app = Starlette(routes=[Route("/items/{item}", lambda request: PlainTextResponse("1"))])
    assert asyncio.run(_asgi_get(app, "/items/1"))[0]["status"] == 200


def uvicorn_loaded_app() -> None:
    """A raw ASGI app loaded by uvicorn's ``Config``, called as its server calls it."""
    import asyncio

    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"1"})

    config = uvicorn.Config(app, lifespan="off", ws="none", proxy_headers=False)
    config.load()
    assert asyncio.run(_asgi_get(config.loaded_app, "/items/1"))[0]["status"] == 200


async def _asgi_get(app: Any, path: str) -> list[dict[str, Any]]:
    """One GET through ``app`` as an ASGI server makes it; the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"contract.test")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return sent


def httpx_call() -> None:
    import asyncio

    import httpx

    async def async_call(url: str) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(url)).text == "ok"

    with _ok_server() as url:
        assert httpx.get(url, timeout=10).text == "ok"
        asyncio.run(async_call(url))


def urllib3_call() -> None:
    import urllib3

    with _ok_server() as url:
        with urllib3.PoolManager() as manager:
            assert manager.request("GET", url).data == b"ok"
        port = urllib3.util.parse_url(url).port
        with urllib3.HTTPConnectionPool("127.0.0.1", port) as pool:
            assert pool.urlopen("GET", "/").data == b"ok"


def aiohttp_client_call() -> None:
    import asyncio

    import aiohttp

    async def call(url: str) -> None:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert await response.text() == "ok"

    with _ok_server() as url:
        asyncio.run(call(url))


def redis_command() -> None:
    """A command to a port nothing listens on: refused at once, still one span."""
    import socket

    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        client = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
        try:
            client.ping()
        except redis.ConnectionError:
            pass
        else:
            raise AssertionError("nothing listens on the port")


def celery_send() -> None:
    """A task sent to Celery's in-memory broker: one PRODUCER span, no worker needed."""
    import celery

    app = celery.Celery("contract", broker="memory://")
    assert app.send_task("tasks.add", (1, 2)).id


def sqlite3_call() -> None:
    import sqlite3

    connection = sqlite3.connect(":memory:")
    try:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        connection.close()


def _postgres_dsn() -> str:
    import os

    return os.environ["TELEMETRY_RUN_TEST_POSTGRES_DSN"]


def psycopg_call() -> None:
    import psycopg

    with psycopg.connect(_postgres_dsn()) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)


def psycopg2_call() -> None:
    import psycopg2

    connection = psycopg2.connect(_postgres_dsn())
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    finally:
        connection.close()


def sqlalchemy_call() -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine("sqlite://")
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    engine.dispose()
