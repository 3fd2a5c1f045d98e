"""SQLAlchemy (1.4 and 2.x): one CLIENT span per statement, through the engine's events.

A listener on the ``Engine`` class (every engine, and every ``AsyncEngine``'s engine) starts
the span in ``before_cursor_execute`` and ends it in ``after_cursor_execute`` or
``handle_error``. The span is current while the driver runs, in the ``db`` layer, so an
instrumented driver underneath (sqlite3, psycopg, psycopg2) makes no span of its own: one span
per statement, not one per statement per driver. The attributes come from the engine's URL
(``db.system.name`` from the dialect, ``db.namespace``, ``server.address``/``port``) and the
statement, literals replaced by ``?``. With ``TELEMETRY_RUN_SQLCOMMENTER=true`` the statement
sent carries this span's ``traceparent``.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors.base import Instrumentor, guard
from telemetry_run.instrumentors.dbapi import DbApi, DbInfo, commented

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import Call
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["SqlalchemyInstrumentor"]

#: The conventions' ``db.system.name`` for SQLAlchemy's dialect names, where they differ.
_SYSTEMS: Final = {"mssql": "microsoft.sql_server", "oracle": "oracle.db"}
_CALL: Final = "_telemetry_run_call"

_infos: weakref.WeakKeyDictionary[Any, DbInfo] = weakref.WeakKeyDictionary()


def _engine_info(engine: Any) -> DbInfo:
    found = _infos.get(engine)
    if found is None:
        url = engine.url
        dialect = url.get_backend_name()
        found = _infos[engine] = DbInfo(
            _SYSTEMS.get(dialect, dialect), url.database, url.host, url.port
        )
    return found


class SqlalchemyInstrumentor(Instrumentor):
    """Listens to every engine's cursor events."""

    db: DbApi

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.db = DbApi.from_config(tracer, "sqlalchemy", config, self.enabled)
        self._listeners = (
            ("before_cursor_execute", self._before),
            ("after_cursor_execute", self._after),
            ("handle_error", self._error),
        )
        event.listen(Engine, "before_cursor_execute", self._before, retval=True)
        event.listen(Engine, "after_cursor_execute", self._after)
        event.listen(Engine, "handle_error", self._error)

    def _uninstrument(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        for name, listener in self._listeners:
            if event.contains(Engine, name, listener):
                event.remove(Engine, name, listener)

    def _before(
        self,
        conn: Any,
        cursor: Any,
        statement: Any,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> tuple[Any, Any]:
        if not self.enabled() or context is None:
            return statement, parameters
        with guard("sqlalchemy: statement start"):
            info = _engine_info(conn.engine)
            batch = len(parameters) if executemany and hasattr(parameters, "__len__") else None
            carrier: dict[str, str] | None = {} if self.db.commenter else None
            text = statement if isinstance(statement, str) else None
            call = self.db.site.start(info, text, batch, None, carrier)
            if call is not None:
                setattr(context, _CALL, call)
                if carrier:
                    statement = commented(statement, carrier)
        return statement, parameters

    def _after(
        self,
        conn: Any,
        cursor: Any,
        statement: Any,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        call: Call | None = getattr(context, _CALL, None)
        if call is not None:
            with guard("sqlalchemy: statement end"):
                delattr(context, _CALL)
                call.end()
                call.detach()

    def _error(self, exception_context: Any) -> None:
        context = exception_context.execution_context
        call: Call | None = getattr(context, _CALL, None)
        if call is not None:
            with guard("sqlalchemy: statement end"):
                delattr(context, _CALL)
                call.fail(exception_context.original_exception)
