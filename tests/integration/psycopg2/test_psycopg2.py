"""``telemetry-run python app.py`` on psycopg2 against a real PostgreSQL: spans over OTLP."""

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

pytest.importorskip("psycopg2", reason="psycopg2 is not installed")

APP = """
import sys
import psycopg2.pool
from telemetry_run import trace

pool = psycopg2.pool.ThreadedConnectionPool(1, 2, sys.argv[1])
with trace.get_tracer("app").start_as_current_span("job"):
    conn = pool.getconn()
    with conn.cursor() as cursor:
        cursor.execute("SELECT %s::text", ("a@x.org",))
        print(cursor.fetchone()[0])
        cursor.execute("SELECT 'b@x.org'")
        print(cursor.fetchone()[0])
    pool.putconn(conn)
pool.closeall()
"""

CLIENT_KIND = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT


def test_statements_through_a_pool_are_client_spans(
    otlp_receiver: OTLPReceiver, tmp_path: Path, postgres: PostgresServer
) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    result = launch([PYTHON, str(app), postgres.dsn], otlp_env(otlp_receiver))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["a@x.org", "b@x.org"]
    spans = otlp_receiver.wait_for_spans(3, timeout=20)
    [job] = [span for span in spans if span.name == "job"]
    statements = sorted(
        (span for span in spans if span.kind == CLIENT_KIND), key=lambda s: s.start_time_unix_nano
    )
    assert [span.name for span in statements] == ["SELECT postgres", "SELECT postgres"]
    assert all(span.parent_span_id == job.span_id for span in statements)
    texts = [attributes(span)["db.query.text"] for span in statements]
    assert texts == ["SELECT %s::text", "SELECT ?"]
    assert "x.org" not in repr([attributes(span) for span in spans])
