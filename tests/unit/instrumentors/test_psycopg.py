"""The psycopg (3) instrumentor against a real PostgreSQL: sync, asyncio, pools."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from telemetry_run.instrumentors import plugin
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")

from telemetry_run.instrumentors.psycopg import PsycopgInstrumentor  # noqa: E402


@pytest.fixture(autouse=True)
def _dsn(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_RUN_TEST_POSTGRES_DSN", postgres.dsn)  # the contract's child


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Any]:
    made: list[PsycopgInstrumentor] = []

    def instrument(**environ: str) -> SpanRecorder:
        instrumentor = PsycopgInstrumentor()
        instrumentor.instrument(span_recorder.provider, config_for(plugin, environ))
        made.append(instrumentor)
        return span_recorder

    yield instrument
    for instrumentor in made:
        instrumentor.uninstrument()


def _db_spans(recorder: SpanRecorder) -> list[Any]:
    return [span for span in recorder.spans if span.kind is SpanKind.CLIENT]


def test_statements_are_client_spans_with_the_server_and_no_values(
    instrument: Any, postgres: PostgresServer
) -> None:
    recorder = instrument()
    with recorder.tracer.start_as_current_span("job") as job, psycopg.connect(postgres.dsn) as conn:
        conn.execute("CREATE TEMP TABLE users (id int, email text)")
        with conn.cursor() as cursor:
            cursor.execute("INSERT INTO users VALUES (%s, %s)", (1, "a@x.org"))
            cursor.execute("INSERT INTO users VALUES (2, 'b@x.org')")
            cursor.execute("SELECT email FROM users WHERE id > %s ORDER BY id", (0,))
            assert [row[0] for row in cursor] == ["a@x.org", "b@x.org"]  # used as an iterator
    spans = _db_spans(recorder)
    assert [span.name for span in spans] == [
        "CREATE users",
        "INSERT users",
        "INSERT users",
        "SELECT users",
    ]
    assert all(span.parent.span_id == job.get_span_context().span_id for span in spans)
    assert dict(spans[2].attributes) == {
        "db.system.name": "postgresql",
        "db.namespace": "postgres",
        "server.address": "127.0.0.1",
        "server.port": postgres.port,
        "db.query.text": "INSERT INTO users VALUES (?, ?)",
        "db.operation.name": "INSERT",
        "db.collection.name": "users",
    }
    assert "x.org" not in repr([span.attributes for span in spans])


def test_executemany_of_ten_thousand_rows_and_composed_queries(
    instrument: Any, postgres: PostgresServer
) -> None:
    from psycopg import sql

    recorder = instrument()
    with psycopg.connect(postgres.dsn) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE t (n int)")
        cursor.executemany("INSERT INTO t VALUES (%s)", [(n,) for n in range(10_000)])
        query = sql.SQL("SELECT count(*) FROM {} WHERE n >= {}").format(
            sql.Identifier("t"), sql.Literal(5)
        )
        assert cursor.execute(query).fetchone() == (9_995,)
    spans = _db_spans(recorder)
    assert [span.name for span in spans] == ["CREATE t", "INSERT t", "SELECT t"]
    assert spans[1].attributes["db.operation.batch.size"] == 10_000
    assert spans[2].attributes["db.query.text"] == 'SELECT count(*) FROM "t" WHERE n >= ?'


def test_a_failed_statement_records_the_sqlstate(instrument: Any, postgres: PostgresServer) -> None:
    recorder = instrument()
    with psycopg.connect(postgres.dsn) as conn, pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM missing")
    [span] = _db_spans(recorder)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["db.response.status_code"] == "42P01"
    assert span.attributes["error.type"] == "psycopg.errors.UndefinedTable"


def test_a_unique_violation_records_no_value_of_the_row(
    instrument: Any, postgres: PostgresServer
) -> None:
    recorder = instrument()
    with psycopg.connect(postgres.dsn) as conn:
        conn.execute("CREATE TEMP TABLE emails (email text PRIMARY KEY)")
        conn.execute("INSERT INTO emails VALUES (%s)", ("bob@x.org",))
        with pytest.raises(psycopg.errors.UniqueViolation, match=r"bob@x\.org"):
            conn.execute("INSERT INTO emails VALUES (%s)", ("bob@x.org",))
    failed = _db_spans(recorder)[-1]
    assert failed.attributes["db.response.status_code"] == "23505"
    [event] = failed.events
    assert event.attributes["exception.message"] == (
        'duplicate key value violates unique constraint "emails_pkey"'
    )
    assert "UniqueViolation: duplicate key" in event.attributes["exception.stacktrace"]
    everything = repr([(s.attributes, s.events, s.status) for s in recorder.spans])
    assert "bob@x.org" not in everything


def test_asyncio_connections_and_server_cursors(instrument: Any, postgres: PostgresServer) -> None:
    recorder = instrument()

    async def run() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(postgres.dsn) as conn:
            with recorder.tracer.start_as_current_span("job"):
                cursor = await conn.execute("SELECT generate_series(1, 3)")
                rows = await cursor.fetchall()
                await conn.cursor().executemany("SELECT %s", [(1,), (2,)])
                async with conn.cursor(name="named") as named:
                    await named.execute("SELECT generate_series(1, 2)")
                    rows += await named.fetchall()
            return rows

    assert asyncio.run(run()) == [(1,), (2,), (3,), (1,), (2,)]
    spans = _db_spans(recorder)
    [job] = recorder.by_name("job")
    assert [span.name for span in spans] == ["SELECT postgres"] * 3
    assert all(span.parent.span_id == job.context.span_id for span in spans)


def test_streamed_rows_are_one_span_ending_with_the_rows(
    instrument: Any, postgres: PostgresServer
) -> None:
    recorder = instrument()
    with psycopg.connect(postgres.dsn) as conn:
        cursor = conn.cursor()
        rows = cursor.stream("SELECT generate_series(1, %s)", (3,))
        assert next(rows) == (1,)
        assert _db_spans(recorder) == []  # still streaming
        assert [row for row in rows] == [(2,), (3,)]

        async def run() -> list[Any]:
            async with await psycopg.AsyncConnection.connect(postgres.dsn) as aconn:
                return [row async for row in aconn.cursor().stream("SELECT 7")]

        assert asyncio.run(run()) == [(7,)]
    spans = _db_spans(recorder)
    assert [span.name for span in spans] == ["SELECT postgres", "SELECT postgres"]
    assert spans[0].attributes["db.query.text"] == "SELECT generate_series(?, %s)"


def test_a_pool_hands_out_traced_connections(instrument: Any, postgres: PostgresServer) -> None:
    psycopg_pool = pytest.importorskip("psycopg_pool", reason="psycopg-pool is not installed")
    recorder = instrument()
    with psycopg_pool.ConnectionPool(postgres.dsn, min_size=1, max_size=2, open=True) as pool:
        for _ in range(3):
            with pool.connection() as conn:
                conn.execute("SELECT 1")
    assert [span.name for span in _db_spans(recorder)] == ["SELECT postgres"] * 3


def test_sqlcommenter_reaches_the_server(instrument: Any, postgres: PostgresServer) -> None:
    recorder = instrument(TELEMETRY_RUN_SQLCOMMENTER="true")
    with psycopg.connect(postgres.dsn) as conn:
        [(query,)] = conn.execute("SELECT current_query()").fetchall()
    [span] = _db_spans(recorder)
    context = span.context
    flags = int(context.trace_flags)
    traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    assert query == f"SELECT current_query()/*traceparent='{traceparent}'*/"
    assert span.attributes["db.query.text"] == "SELECT current_query()"


contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "psycopg"),
    exercise="tests.unit.instrumentors.exercises:psycopg_call",
)
