"""The SQLAlchemy instrumentor: one span per statement over a traced driver, sync and asyncio."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.base import Instrumentor
from telemetry_run.instrumentors.sqlite3 import Sqlite3Instrumentor
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import CHECKS, contract_tests

if TYPE_CHECKING:
    from tests.postgres_server import PostgresServer

pytest.importorskip("sqlalchemy", reason="sqlalchemy is not installed")

import sqlalchemy

from telemetry_run.instrumentors.sqlalchemy import SqlalchemyInstrumentor


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Any]:
    made: list[Instrumentor] = []

    def instrument(*classes: type[Instrumentor], **environ: str) -> SpanRecorder:
        for cls in classes or (SqlalchemyInstrumentor,):
            instrumentor = cls()
            instrumentor.instrument(span_recorder.provider, config_for(plugin, environ))
            made.append(instrumentor)
        return span_recorder

    yield instrument
    for instrumentor in made:
        instrumentor.uninstrument()


def _db_spans(recorder: SpanRecorder) -> list[Any]:
    return [span for span in recorder.spans if span.kind is SpanKind.CLIENT]


def _sqlalchemy_spans(recorder: SpanRecorder) -> list[Any]:
    scope = "telemetry_run.instrumentors.sqlalchemy"
    return [span for span in recorder.spans if span.instrumentation_scope.name == scope]


def test_one_span_per_statement_over_a_traced_driver(instrument: Any) -> None:
    recorder = instrument(SqlalchemyInstrumentor, Sqlite3Instrumentor)
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.begin() as conn, recorder.tracer.start_as_current_span("job") as job:
        conn.execute(sqlalchemy.text("CREATE TABLE users (id INTEGER, email TEXT)"))
        conn.execute(
            sqlalchemy.text("INSERT INTO users VALUES (:id, :email)"),
            [{"id": 1, "email": "a@x.org"}, {"id": 2, "email": "b@x.org"}],
        )
        rows = conn.execute(sqlalchemy.text("SELECT email FROM users WHERE id = 2")).all()
    engine.dispose()
    assert [row[0] for row in rows] == ["b@x.org"]
    # The dialect's own set-up (a PRAGMA on the raw connection) is the driver's span, outside.
    spans = [span for span in _db_spans(recorder) if span.parent is not None]
    assert [span.name for span in spans] == ["CREATE users", "INSERT users", "SELECT users"]
    assert {span.instrumentation_scope.name for span in spans} == {
        "telemetry_run.instrumentors.sqlalchemy"
    }
    assert all(span.parent.span_id == job.get_span_context().span_id for span in spans)
    assert spans[1].attributes["db.operation.batch.size"] == 2
    assert spans[2].attributes["db.system.name"] == "sqlite"
    assert spans[2].attributes["db.query.text"] == "SELECT email FROM users WHERE id = ?"
    assert "x.org" not in repr([span.attributes for span in spans])


def test_a_failed_statement_is_an_error_and_the_app_gets_its_exception(instrument: Any) -> None:
    recorder = instrument(SqlalchemyInstrumentor, Sqlite3Instrumentor)
    engine = sqlalchemy.create_engine("sqlite://")
    with pytest.raises(sqlalchemy.exc.OperationalError), engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT * FROM missing"))
    with engine.connect() as conn:  # the span's context was left: the next one is a root
        conn.execute(sqlalchemy.text("SELECT 1"))
    engine.dispose()
    failed, ok = _sqlalchemy_spans(recorder)
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "sqlite3.OperationalError"
    assert ok.parent is None


def test_core_statements_and_uninstrument(span_recorder: SpanRecorder) -> None:
    metadata = sqlalchemy.MetaData()
    items = sqlalchemy.Table(
        "items",
        metadata,
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("name", sqlalchemy.String),
    )
    instrumentor = SqlalchemyInstrumentor()
    instrumentor.instrument(span_recorder.provider, config_for(plugin, {}))
    engine = sqlalchemy.create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(items.insert().values(name="secret"))
        count = conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(items))
        assert count.scalar() == 1
    names = [span.name for span in _sqlalchemy_spans(span_recorder)]
    assert "INSERT items" in names and "SELECT items" in names
    assert "secret" not in repr([span.attributes for span in span_recorder.spans])
    instrumentor.uninstrument()
    before = len(span_recorder.spans)
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT 1"))
    engine.dispose()
    assert len(span_recorder.spans) == before


def test_sqlcommenter_comments_once_with_the_sqlalchemy_span(instrument: Any) -> None:
    recorder = instrument(
        SqlalchemyInstrumentor, Sqlite3Instrumentor, TELEMETRY_RUN_SQLCOMMENTER="true"
    )
    sent: list[str] = []
    engine = sqlalchemy.create_engine("sqlite://")

    @sqlalchemy.event.listens_for(engine, "connect")
    def _trace(dbapi_connection: sqlite3.Connection, record: Any) -> None:
        dbapi_connection.set_trace_callback(sent.append)

    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT 1"))
    engine.dispose()
    [span] = _sqlalchemy_spans(recorder)
    context = span.context
    flags = int(context.trace_flags)
    traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    assert f"SELECT 1/*traceparent='{traceparent}'*/" in sent


def test_an_asyncio_engine_over_psycopg(instrument: Any, postgres: PostgresServer) -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    pytest.importorskip("greenlet", reason="greenlet (SQLAlchemy's asyncio) is not installed")
    if int(sqlalchemy.__version__.split(".")[0]) < 2:
        pytest.skip("SQLAlchemy 1.4 has no psycopg (3) dialect: the asyncio test needs 2.0")
    from sqlalchemy.ext.asyncio import create_async_engine

    from telemetry_run.instrumentors.psycopg import PsycopgInstrumentor

    recorder = instrument(SqlalchemyInstrumentor, PsycopgInstrumentor)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/postgres"

    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            with recorder.tracer.start_as_current_span("job"):
                async with engine.connect() as conn:
                    result = await conn.execute(sqlalchemy.text("SELECT 40 + 2"))
                    return result.scalar()
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == 42
    [job] = recorder.by_name("job")
    ours = [span for span in _db_spans(recorder) if span.parent is not None]
    selects = [span for span in ours if span.attributes.get("db.query.text") == "SELECT ? + ?"]
    assert len(selects) == 1  # not one from SQLAlchemy and one from psycopg
    [select] = selects
    assert select.instrumentation_scope.name == "telemetry_run.instrumentors.sqlalchemy"
    assert select.parent.span_id == job.context.span_id
    assert select.attributes["server.port"] == postgres.port
    assert select.attributes["db.system.name"] == "postgresql"


# Event listeners, not patches: nothing for the Patcher to restore. That uninstrument()
# removes them is test_core_statements_and_uninstrument.
contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "sqlalchemy"),
    exercise="tests.unit.instrumentors.exercises:sqlalchemy_call",
    checks=[check for check in CHECKS if check != "uninstrument_restores"],
)
