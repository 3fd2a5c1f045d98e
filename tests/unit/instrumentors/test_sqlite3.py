"""The sqlite3 instrumentor against the real sqlite3, and the generic DB-API wrapper on it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from telemetry_run.instrumentors import dbapi, plugin
from telemetry_run.instrumentors.base import Patcher
from telemetry_run.instrumentors.dbapi import DbApi, DbInfo, sqlcommenter_comment, wrap_connect
from telemetry_run.instrumentors.sqlite3 import Sqlite3Instrumentor
from telemetry_run.sdk.context import suppress_instrumentation
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests


@pytest.fixture(autouse=True)
def _connections_closed() -> Iterator[None]:
    """Every connection a test opened is closed at its end: Python 3.13 warns about an unclosed
    one when it is collected, which would fail whichever test happens to collect it."""
    yield
    import gc

    for thing in gc.get_objects():
        # ``type``, not ``isinstance``: that asks ``__class__``, which sets up a lazy object
        # (Django's, left by another test module) and may raise
        if issubclass(type(thing), sqlite3.Connection):
            thing.close()


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Any]:
    made: list[Sqlite3Instrumentor] = []

    def instrument(**environ: str) -> SpanRecorder:
        instrumentor = Sqlite3Instrumentor()
        instrumentor.instrument(span_recorder.provider, config_for(plugin, environ))
        made.append(instrumentor)
        return span_recorder

    yield instrument
    for instrumentor in made:
        instrumentor.uninstrument()


def _db_spans(recorder: SpanRecorder) -> list[Any]:
    return [span for span in recorder.spans if span.kind is SpanKind.CLIENT]


def test_each_statement_is_one_client_span_without_its_values(instrument: Any) -> None:
    recorder = instrument()
    connection = sqlite3.connect(":memory:")
    assert isinstance(connection, sqlite3.Connection)
    with recorder.tracer.start_as_current_span("job") as job:
        connection.execute("CREATE TABLE users (id INTEGER, name TEXT)")
        cursor = connection.cursor()
        cursor.execute("INSERT INTO users VALUES (1, 'alice')")
        cursor.execute("INSERT INTO users VALUES (?, ?)", (2, "bob"))
        rows = list(cursor.execute("SELECT name FROM users WHERE id = 2"))
    assert rows == [("bob",)]
    spans = _db_spans(recorder)
    assert [span.name for span in spans] == [
        "CREATE users",
        "INSERT users",
        "INSERT users",
        "SELECT users",
    ]
    assert all(span.parent.span_id == job.get_span_context().span_id for span in spans)
    insert = dict(spans[1].attributes)
    assert insert == {
        "db.system.name": "sqlite",
        "db.namespace": ":memory:",
        "db.query.text": "INSERT INTO users VALUES (?, ?)",
        "db.operation.name": "INSERT",
        "db.collection.name": "users",
    }
    assert "alice" not in repr([span.attributes for span in spans])
    assert "bob" not in repr([span.attributes for span in spans])


def test_a_statement_run_again_is_described_as_the_first_time(instrument: Any) -> None:
    """The description a connection remembers (``DbInfo.statements``) changes no span."""
    recorder = instrument()
    first, second = sqlite3.connect(":memory:"), sqlite3.connect("file:other?mode=memory", uri=True)
    for connection in (first, second, first, second):
        connection.execute("SELECT 1")
        connection.execute("SELECT count(*) FROM sqlite_master")
    first.execute("CREATE TABLE t (n INTEGER)")
    first.execute("INSERT INTO t VALUES (?)", (0,))  # remembered: the batches add their size
    first.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    first.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    for n in range(dbapi._STATEMENTS + 5):  # more statements than remembered: still right
        first.execute(f"SELECT {n} AS n{n}")
    spans = _db_spans(recorder)
    described = [(span.name, dict(span.attributes)) for span in spans[:8]]
    assert described[:4] == described[4:8]
    assert described[0] == (
        "SELECT :memory:",
        {
            "db.system.name": "sqlite",
            "db.namespace": ":memory:",
            "db.query.text": "SELECT ?",
            "db.operation.name": "SELECT",
        },
    )
    assert described[1][0] == "SELECT sqlite_master"
    assert described[3][1]["db.namespace"] == "file:other?mode=memory"
    batches = [span.attributes.get("db.operation.batch.size") for span in spans[9:12]]
    assert batches == [None, 2, 3]
    assert [span.attributes["db.query.text"] for span in spans[12:]] == [
        f"SELECT ? AS n{n}" for n in range(dbapi._STATEMENTS + 5)
    ]
    for span in spans:  # no span's attributes are another's dict
        assert sum(other.attributes is span.attributes for other in spans) == 1


def test_executemany_of_ten_thousand_rows_is_one_span(instrument: Any) -> None:
    recorder = instrument()
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (n INTEGER)")
    connection.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(10_000)])
    connection.cursor().executemany("INSERT INTO t VALUES (?)", ((n,) for n in range(10_000)))
    assert connection.execute("SELECT count(*) FROM t").fetchone() == (20_000,)
    spans = _db_spans(recorder)
    assert [span.name for span in spans] == ["CREATE t", "INSERT t", "INSERT t", "SELECT t"]
    assert spans[1].attributes["db.operation.batch.size"] == 10_000
    assert "db.operation.batch.size" not in spans[2].attributes  # a generator is not consumed


def test_a_failed_statement_is_an_error_and_the_app_gets_its_exception(instrument: Any) -> None:
    recorder = instrument()
    connection = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        connection.execute("SELECT * FROM missing WHERE x = 'secret'")
    [span] = _db_spans(recorder)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "sqlite3.OperationalError"
    assert span.attributes["db.response.status_code"] == "1"  # SQLITE_ERROR
    assert span.attributes["db.query.text"] == "SELECT * FROM missing WHERE x = ?"


def test_own_factories_and_context_managers_keep_working(instrument: Any) -> None:
    recorder = instrument()

    class MyConnection(sqlite3.Connection):
        pass

    class MyCursor(sqlite3.Cursor):
        pass

    connection = sqlite3.connect(":memory:", factory=MyConnection)
    assert isinstance(connection, MyConnection)
    cursor = connection.cursor(MyCursor)
    assert isinstance(cursor, MyCursor)
    with connection:
        cursor.execute("SELECT 1")
    target = sqlite3.connect(":memory:")
    connection.backup(target)  # needs the real type: a proxy would fail here
    assert [span.name for span in _db_spans(recorder)] == ["SELECT :memory:"]  # no table: the db
    assert _db_spans(recorder)[0].attributes["db.namespace"] == ":memory:"


def test_suppressed_makes_no_span(instrument: Any) -> None:
    recorder = instrument()
    connection = sqlite3.connect(":memory:")
    with suppress_instrumentation():
        connection.execute("SELECT 1")
    assert _db_spans(recorder) == []


def test_uninstrument_stops_tracing_connections_made_before(span_recorder: SpanRecorder) -> None:
    instrumentor = Sqlite3Instrumentor()
    instrumentor.instrument(span_recorder.provider, config_for(plugin, {}))
    connection = sqlite3.connect(":memory:")
    instrumentor.uninstrument()
    connection.execute("SELECT 1")
    assert _db_spans(span_recorder) == []


def test_sqlcommenter_appends_the_traceparent_when_asked(instrument: Any) -> None:
    recorder = instrument(TELEMETRY_RUN_SQLCOMMENTER="true")
    sent: list[str] = []
    connection = sqlite3.connect(":memory:")
    connection.set_trace_callback(sent.append)
    connection.execute("SELECT 1;")
    [span] = _db_spans(recorder)
    context = span.context
    traceparent = (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    )
    assert sent == [f"SELECT 1/*traceparent='{traceparent}'*/;"]
    assert span.attributes["db.query.text"] == "SELECT ?;"  # the app's statement, not ours


def test_sqlcommenter_is_off_by_default(instrument: Any) -> None:
    instrument()
    sent: list[str] = []
    connection = sqlite3.connect(":memory:")
    connection.set_trace_callback(sent.append)
    connection.execute("SELECT 1")
    assert sent == ["SELECT 1"]


def test_sqlcommenter_format_quotes_values_and_sorts_keys() -> None:
    comment = sqlcommenter_comment(
        {"tracestate": "a=1,b=2", "traceparent": "00-ab-cd-01", "baggage": "x"}
    )
    assert comment == "/*traceparent='00-ab-cd-01',tracestate='a%3D1%2Cb%3D2'*/"


def test_the_generic_wrapper_traces_any_driver_behind_a_proxy(span_recorder: SpanRecorder) -> None:
    import types

    module = types.SimpleNamespace(connect=sqlite3.connect)
    patcher = Patcher()
    db = DbApi(span_recorder.tracer, "mydriver", enabled=lambda: True)
    wrap_connect(
        patcher, module, "connect", db, lambda conn, args, kwargs: DbInfo("sqlite", "main")
    )
    connection = module.connect(":memory:")
    assert isinstance(connection, sqlite3.Connection)  # the proxy passes isinstance
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE t (n INTEGER)")
    cursor.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    assert [row for row in cursor.execute("SELECT n FROM t")] == [(1,), (2,)]
    patcher.restore()
    assert module.connect is sqlite3.connect
    spans = _db_spans(span_recorder)
    assert [span.name for span in spans] == ["CREATE t", "INSERT t", "SELECT t"]
    assert spans[1].attributes["db.operation.batch.size"] == 2


contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "sqlite3"),
    exercise="tests.unit.instrumentors.exercises:sqlite3_call",
)
