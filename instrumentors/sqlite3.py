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
from telemetry_run.instrumentors.dbapi import SQLCOMMENTER, DbApi, DbInfo

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


class _Classes:
    """The traced subclasses, made once per class the application asks for."""

    def __init__(self, db: DbApi) -> None:
        self.db = db
        self.connections: dict[type, type] = {}
        self.cursors: dict[type, type] = {}

    def cursor_class(self, base: type) -> type:
        if getattr(base, "_telemetry_run_traced", False):
            return base
        found = self.cursors.get(base)
        if found is not None:
            return found
        db = self.db

        class TracedCursor(base):  # type: ignore[misc]
            _telemetry_run_traced = True

            def execute(self, *args: Any, **kwargs: Any) -> Any:
                return db.execute(super().execute, _info(self), None, args, kwargs)

            def executemany(self, *args: Any, **kwargs: Any) -> Any:
                method = super().executemany
                return db.execute(method, _info(self), None, args, kwargs, many=True)

        TracedCursor.__name__ = TracedCursor.__qualname__ = base.__name__
        TracedCursor.__module__ = base.__module__
        self.cursors[base] = TracedCursor
        return TracedCursor

    def connection_class(self, base: type) -> type:
        if getattr(base, "_telemetry_run_traced", False):
            return base
        found = self.connections.get(base)
        if found is not None:
            return found
        classes = self
        import sqlite3

        class TracedConnection(base):  # type: ignore[misc]
            _telemetry_run_traced = True

            def cursor(self, factory: type = sqlite3.Cursor) -> Any:
                return super().cursor(classes.cursor_class(factory))

            def execute(self, *args: Any) -> Any:
                return self.cursor().execute(*args)

            def executemany(self, *args: Any) -> Any:
                return self.cursor().executemany(*args)

        TracedConnection.__name__ = TracedConnection.__qualname__ = base.__name__
        TracedConnection.__module__ = base.__module__
        self.connections[base] = TracedConnection
        return TracedConnection


class Sqlite3Instrumentor(Instrumentor):
    """Wraps ``sqlite3.connect``: its connections and cursors are traced subclasses."""

    db: DbApi

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import sqlite3
        import sqlite3.dbapi2

        self.db = DbApi(
            tracer_provider.get_tracer(__name__, __version__),
            "sqlite3",
            enabled=self.enabled,
            commenter=bool(config.get(SQLCOMMENTER)),
        )
        self.classes = _Classes(self.db)
        self.patcher.wrap(sqlite3, "connect", self._connect)
        if sqlite3.dbapi2.connect is not sqlite3.connect:
            self.patcher.wrap(sqlite3.dbapi2, "connect", self._connect)

    def _connect(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        call_args, call_kwargs = args, kwargs
        with guard("sqlite3: connect"):
            import sqlite3

            if len(args) > _FACTORY_POSITION:
                factory = self.classes.connection_class(args[_FACTORY_POSITION])
                call_args = (*args[:_FACTORY_POSITION], factory, *args[_FACTORY_POSITION + 1 :])
            else:
                base = kwargs.get("factory") or sqlite3.Connection
                call_kwargs = {**kwargs, "factory": self.classes.connection_class(base)}
        connection = wrapped(*call_args, **call_kwargs)
        with guard("sqlite3: connect"):
            if getattr(type(connection), "_telemetry_run_traced", False):
                database = args[0] if args else kwargs.get("database", "")
                namespace = os.fsdecode(database) if database is not None else None
                setattr(connection, _INFO, DbInfo("sqlite", namespace))
        return connection
