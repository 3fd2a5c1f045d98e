"""The psycopg2 instrumentor against a real PostgreSQL: real psycopg2 objects, traced."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from telemetry_run.instrumentors import plugin
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer

pytest.importorskip("psycopg2", reason="psycopg2 is not installed")

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import psycopg2.pool

from telemetry_run.instrumentors.psycopg2 import Psycopg2Instrumentor


@pytest.fixture(autouse=True)
def _dsn(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_RUN_TEST_POSTGRES_DSN", postgres.dsn)  # the contract's child


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Any]:
    made: list[Psycopg2Instrumentor] = []

    def instrument(**environ: str) -> SpanRecorder:
        instrumentor = Psycopg2Instrumentor()
        instrumentor.instrument(span_recorder.provider, config_for(plugin, environ))
        made.append(instrumentor)
        return span_recorder

    yield instrument
    for instrumentor in made:
        instrumentor.uninstrument()


def _db_spans(recorder: SpanRecorder) -> list[Any]:
    return [span for span in recorder.spans if span.kind is SpanKind.CLIENT]


def test_statements_are_client_spans_and_the_objects_stay_real(
    instrument: Any, postgres: PostgresServer
) -> None:
    recorder = instrument()
    conn = psycopg2.connect(postgres.dsn)
    try:
        assert isinstance(conn, psycopg2.extensions.connection)
        psycopg2.extras.register_uuid(conn_or_curs=conn)  # wants the real type
        with recorder.tracer.start_as_current_span("job") as job, conn.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE users (id int, email text)")
            cursor.execute("INSERT INTO users VALUES (%s, %s)", (1, "a@x.org"))
            cursor.executemany("INSERT INTO users VALUES (%s, %s)", [(2, "b@x.org"), (3, "c")])
            cursor.execute("SELECT email FROM users WHERE id = 1")
            assert [row[0] for row in cursor] == ["a@x.org"]  # used as an iterator
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
            assert isinstance(cursor, psycopg2.extras.RealDictCursor)
            cursor.execute("SELECT 1 AS one")
            assert cursor.fetchone() == {"one": 1}
    finally:
        conn.close()
    spans = _db_spans(recorder)
    assert [span.name for span in spans] == [
        "CREATE users",
        "INSERT users",
        "INSERT users",
        "SELECT users",
        "SELECT postgres",
    ]
    assert all(span.parent.span_id == job.get_span_context().span_id for span in spans[:4])
    assert dict(spans[1].attributes) == {
        "db.system.name": "postgresql",
        "db.namespace": "postgres",
        "server.address": "127.0.0.1",
        "server.port": postgres.port,
        "db.query.text": "INSERT INTO users VALUES (%s, %s)",  # placeholders are kept
        "db.operation.name": "INSERT",
        "db.collection.name": "users",
    }
    assert spans[2].attributes["db.operation.batch.size"] == 2
    assert "x.org" not in repr([span.attributes for span in spans])


def test_callproc_and_a_failure(instrument: Any, postgres: PostgresServer) -> None:
    recorder = instrument()
    conn = psycopg2.connect(postgres.dsn)
    try:
        cursor = conn.cursor()
        cursor.callproc("lower", ("ABC",))
        assert cursor.fetchone() == ("abc",)
        with pytest.raises(psycopg2.errors.UndefinedTable):
            cursor.execute("SELECT * FROM missing WHERE secret = 'x'")
    finally:
        conn.close()
    proc, failed = _db_spans(recorder)
    assert proc.name == "lower" and proc.attributes["db.stored_procedure.name"] == "lower"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["db.response.status_code"] == "42P01"
    assert failed.attributes["db.query.text"] == "SELECT * FROM missing WHERE secret = ?"


def test_a_pool_and_a_connection_factory(instrument: Any, postgres: PostgresServer) -> None:
    recorder = instrument()
    pool = psycopg2.pool.SimpleConnectionPool(1, 2, postgres.dsn)
    try:
        conn = pool.getconn()
        conn.cursor().execute("SELECT 1")
        pool.putconn(conn)
    finally:
        pool.closeall()
    conn = psycopg2.connect(postgres.dsn, connection_factory=psycopg2.extras.LoggingConnection)
    try:
        assert isinstance(conn, psycopg2.extras.LoggingConnection)
        conn.initialize(None)  # type: ignore[arg-type]
        conn.cursor().execute("SELECT 2")
    finally:
        conn.close()
    assert [span.name for span in _db_spans(recorder)] == ["SELECT postgres"] * 2


def test_uninstrument_stops_tracing(span_recorder: SpanRecorder, postgres: PostgresServer) -> None:
    instrumentor = Psycopg2Instrumentor()
    instrumentor.instrument(span_recorder.provider, config_for(plugin, {}))
    conn = psycopg2.connect(postgres.dsn)
    instrumentor.uninstrument()
    try:
        conn.cursor().execute("SELECT 1")
    finally:
        conn.close()
    assert psycopg2.connect.__module__ == "psycopg2"
    assert _db_spans(span_recorder) == []


contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "psycopg2"),
    exercise="tests.unit.instrumentors.exercises:psycopg2_call",
)
