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
from telemetry_run.instrumentors.dbapi import (
    DbApi,
    DbInfo,
    TracedClasses,
    cursor_subclass,
    with_factory,
)
from telemetry_run.instrumentors.psycopg import postgresql_info

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["Psycopg2Instrumentor"]

_INFO: Final = "_telemetry_run_info"


def _info(cursor: Any) -> DbInfo | None:
    connection = cursor.connection
    info: DbInfo | None = getattr(connection, _INFO, None)
    if info is None:
        with guard("psycopg2: connection info"):
            info = postgresql_info(connection)
            setattr(connection, _INFO, info)
    return info


class Psycopg2Instrumentor(Instrumentor):
    """Wraps ``psycopg2.connect``: its connections and cursors are traced subclasses."""

    db: DbApi

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import psycopg2

        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.db = DbApi.from_config(tracer, "psycopg2", config, self.enabled)
        self.classes = TracedClasses()
        self.patcher.wrap(psycopg2, "connect", self._connect)

    def _cursor_class(self, base: type) -> type:
        db = self.db
        return self.classes.get(
            base, lambda base: cursor_subclass(db, base, _info, renders=True, procedures=True)
        )

    def _connection_class(self, base: type) -> type:
        return self.classes.get(base, self._connection_subclass)

    def _connection_subclass(self, base: type) -> type:
        import psycopg2.extensions

        cursor_class = self._cursor_class

        class TracedConnection(base):  # type: ignore[misc]
            def cursor(self, *args: Any, **kwargs: Any) -> Any:
                def traced(given: Any) -> type:  # cursor(name, cursor_factory, ...)
                    return cursor_class(given or self.cursor_factory or psycopg2.extensions.cursor)

                args, kwargs = with_factory(args, kwargs, 1, "cursor_factory", traced)
                return super().cursor(*args, **kwargs)

        return TracedConnection

    def _connect(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        call_args, call_kwargs = args, kwargs
        with guard("psycopg2: connect"):
            import psycopg2.extensions

            def traced(given: Any) -> type:  # connect(dsn, connection_factory, ...)
                return self._connection_class(given or psycopg2.extensions.connection)

            call_args, call_kwargs = with_factory(args, kwargs, 1, "connection_factory", traced)
        return wrapped(*call_args, **call_kwargs)
