"""``telemetry-run python app.py`` on psycopg against a real PostgreSQL: spans over OTLP."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.apps import attributes, otlp_env
from tests.integration.conftest import PYTHON, launch

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver
    from tests.postgres_server import PostgresServer

pytest.importorskip("psycopg", reason="psycopg is not installed")

APP = """
import asyncio
import sys
import psycopg
from telemetry_run import trace

tracer = trace.get_tracer("app")
with tracer.start_as_current_span("sync"), psycopg.connect(sys.argv[1]) as conn:
    conn.execute("CREATE TEMP TABLE users (id int, email text)")
    conn.cursor().executemany("INSERT INTO users VALUES (%s, %s)", [(1, "a@x.org"), (2, "b@x.org")])
    print(conn.execute("SELECT email FROM users WHERE id = 2").fetchone()[0])

async def main():
    async with await psycopg.AsyncConnection.connect(sys.argv[1]) as conn:
        with tracer.start_as_current_span("async"):
            cursor = await conn.execute("SELECT 'c@x.org'")
            print((await cursor.fetchone())[0])

asyncio.run(main())
"""

CLIENT_KIND = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT


def test_sync_and_async_statements_are_children_of_the_apps_spans(
    otlp_receiver: OTLPReceiver, tmp_path: Path, postgres: PostgresServer
) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    env = otlp_env(otlp_receiver, OTEL_SERVICE_NAME="app", TELEMETRY_RUN_SQLCOMMENTER="true")
    result = launch([PYTHON, str(app), postgres.dsn], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["b@x.org", "c@x.org"]
    spans = otlp_receiver.wait_for_spans(6, timeout=20)
    by_name = {span.name: span for span in spans if span.kind != CLIENT_KIND}
    statements = sorted(
        (span for span in spans if span.kind == CLIENT_KIND), key=lambda s: s.start_time_unix_nano
    )
    assert [span.name for span in statements] == [
        "CREATE users",
        "INSERT users",
        "SELECT users",
        "SELECT postgres",
    ]
    parents = [span.parent_span_id for span in statements]
    assert parents == [by_name["sync"].span_id] * 3 + [by_name["async"].span_id]
    select = attributes(statements[2])
    assert select["db.system.name"] == "postgresql"
    assert select["server.address"] == "127.0.0.1"
    assert select["server.port"] == postgres.port
    assert select["db.query.text"] == "SELECT email FROM users WHERE id = ?"
    assert attributes(statements[1])["db.operation.batch.size"] == 2
    assert "x.org" not in repr([attributes(span) for span in spans])
