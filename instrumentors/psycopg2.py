"""psycopg2: one CLIENT span per ``execute``/``executemany``/``callproc``, through subclasses.

psycopg2's connection and cursor are C types that cannot be patched, and a proxy breaks the
functions that want the real type (``register_type``, ``extras.register_uuid(conn)``). So
``psycopg2.connect`` is wrapped to pass a ``connection_factory``: a subclass of the one asked
for whose ``cursor()`` makes a subclass of the cursor class asked for (``RealDictCursor``,
a ``cursor_factory``, ...) with the three methods traced. The application gets real psycopg2
objects of the classes it chose; ``psycopg2.pool`` connects through the same function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors.base import Instrumentor, guard
from telemetry_run.instrumentors.dbapi import SQLCOMMENTER, DbApi, DbInfo
from telemetry_run.instrumentors.psycopg import postgresql_info

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["Psycopg2Instrumentor"]

_INFO: Final = "_telemetry_run_info"
_TRACED: Final = "_telemetry_run_traced"


def _info(cursor: Any) -> DbInfo | None:
    connection = cursor.connection
    info: DbInfo | None = getattr(connection, _INFO, None)
    if info is None:
        with guard("psycopg2: connection info"):
            info = postgresql_info(connection)
            setattr(connection, _INFO, info)
    return info


class _Classes:
    """The traced subclasses, made once per class the application asks for."""

    def __init__(self, db: DbApi) -> None:
        self.db = db
        self.made: dict[type, type] = {}

    def cursor_class(self, base: type) -> type:
        if getattr(base, _TRACED, False):
            return base
        found = self.made.get(base)
        if found is not None:
            return found
        db = self.db

        class TracedCursor(base):  # type: ignore[misc]
            _telemetry_run_traced = True

            def execute(self, *args: Any, **kwargs: Any) -> Any:
                return db.execute(super().execute, _info(self), self, args, kwargs)

            def executemany(self, *args: Any, **kwargs: Any) -> Any:
                method = super().executemany
                return db.execute(method, _info(self), self, args, kwargs, many=True)

            def callproc(self, *args: Any, **kwargs: Any) -> Any:
                method = super().callproc
                return db.execute(method, _info(self), self, args, kwargs, procedure=True)

        return self._named(base, TracedCursor)

    def connection_class(self, base: type) -> type:
        if getattr(base, _TRACED, False):
            return base
        found = self.made.get(base)
        if found is not None:
            return found
        import psycopg2.extensions

        classes = self

        class TracedConnection(base):  # type: ignore[misc]
            _telemetry_run_traced = True

            def cursor(self, *args: Any, **kwargs: Any) -> Any:
                if len(args) > 1:  # cursor(name, cursor_factory, ...)
                    factory = args[1] or self.cursor_factory or psycopg2.extensions.cursor
                    args = (args[0], classes.cursor_class(factory), *args[2:])
                else:
                    factory = (
                        kwargs.get("cursor_factory")
                        or self.cursor_factory
                        or psycopg2.extensions.cursor
                    )
                    kwargs["cursor_factory"] = classes.cursor_class(factory)
                return super().cursor(*args, **kwargs)

        return self._named(base, TracedConnection)

    def _named(self, base: type, traced: type) -> type:
        traced.__name__ = traced.__qualname__ = base.__name__
        traced.__module__ = base.__module__
        self.made[base] = traced
        return traced


class Psycopg2Instrumentor(Instrumentor):
    """Wraps ``psycopg2.connect``: its connections and cursors are traced subclasses."""

    db: DbApi

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import psycopg2

        self.db = DbApi(
            tracer_provider.get_tracer(__name__, __version__),
            "psycopg2",
            enabled=self.enabled,
            commenter=bool(config.get(SQLCOMMENTER)),
        )
        self.classes = _Classes(self.db)
        self.patcher.wrap(psycopg2, "connect", self._connect)

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
        with guard("psycopg2: connect"):
            import psycopg2.extensions

            if len(args) > 1:  # connect(dsn, connection_factory, ...)
                factory = self.classes.connection_class(args[1] or psycopg2.extensions.connection)
                call_args = (args[0], factory, *args[2:])
            else:
                base = kwargs.get("connection_factory") or psycopg2.extensions.connection
                call_kwargs = {**kwargs, "connection_factory": self.classes.connection_class(base)}
        return wrapped(*call_args, **call_kwargs)
