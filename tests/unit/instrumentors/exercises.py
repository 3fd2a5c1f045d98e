"""What the contract suite runs against each built-in instrumentor: one use of its patch points."""

from __future__ import annotations

import http.server
import threading


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


def requests_call() -> None:
    import requests

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        response = requests.get(f"http://127.0.0.1:{server.server_address[1]}/", timeout=10)
        assert response.text == "ok"
    finally:
        server.shutdown()
        server.server_close()


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
