"""sqlite3: one CLIENT span per statement, through a traced subclass of the connection.

``sqlite3.Connection`` and ``Cursor`` are C types that cannot be patched, and a proxy would
break what needs the real type (``Connection.backup``, adapters). So ``sqlite3.connect`` is
wrapped to pass a ``factory``: a subclass of the one asked for (``sqlite3.Connection`` by
default) whose cursors are a subclass of theirs with ``execute``/``executemany`` traced. The
objects the application gets are real sqlite3 objects; ``Connection.execute`` (a shortcut that
skips a subclass's ``Cursor.execute`` in C) goes through a traced cursor.
``db.namespace`` is the database as given to ``connect`` (``:memory:``, a path, a URI).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors.base import Instrumentor, guard
from telemetry_run.instrumentors.dbapi import (
    TRACED,
    DbApi,
    DbInfo,
    TracedClasses,
    cursor_subclass,
    with_factory,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["Sqlite3Instrumentor"]

_INFO: Final = "_telemetry_run_info"
_FACTORY_POSITION: Final = 5  # connect(database, timeout, detect_types, isolation_level,
#                               check_same_thread, factory, ...)


def _info(cursor: Any) -> DbInfo | None:
    return getattr(cursor.connection, _INFO, None)


class Sqlite3Instrumentor(Instrumentor):
    """Wraps ``sqlite3.connect``: its connections and cursors are traced subclasses."""

    db: DbApi

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import sqlite3
        import sqlite3.dbapi2

        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.db = DbApi.from_config(tracer, "sqlite3", config, self.enabled)
        self.classes = TracedClasses()
        self.patcher.wrap(sqlite3, "connect", self._connect)
        if sqlite3.dbapi2.connect is not sqlite3.connect:
            self.patcher.wrap(sqlite3.dbapi2, "connect", self._connect)

    def _cursor_class(self, base: type) -> type:
        db = self.db
        return self.classes.get(base, lambda base: cursor_subclass(db, base, _info))

    def _connection_subclass(self, base: type) -> type:
        import sqlite3

        cursor_class = self._cursor_class

        class TracedConnection(base):  # type: ignore[misc]
            def cursor(self, factory: type = sqlite3.Cursor) -> Any:
                return super().cursor(cursor_class(factory))

            def execute(self, *args: Any) -> Any:
                return self.cursor().execute(*args)

            def executemany(self, *args: Any) -> Any:
                return self.cursor().executemany(*args)

        return TracedConnection

    def _connect(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        call_args, call_kwargs = args, kwargs
        with guard("sqlite3: connect"):
            import sqlite3

            def traced(given: Any) -> type:
                return self.classes.get(given or sqlite3.Connection, self._connection_subclass)

            call_args, call_kwargs = with_factory(
                args, kwargs, _FACTORY_POSITION, "factory", traced
            )
        connection = wrapped(*call_args, **call_kwargs)
        with guard("sqlite3: connect"):
            if getattr(type(connection), TRACED, False):
                database = args[0] if args else kwargs.get("database", "")
                namespace = os.fsdecode(database) if database is not None else None
                setattr(connection, _INFO, DbInfo("sqlite", namespace))
        return connection
