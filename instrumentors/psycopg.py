"""psycopg (3): one CLIENT span per statement, sync and asyncio, pools included.

psycopg's cursors are Python classes, so their methods are patched in place: ``execute`` and
``executemany`` of ``Cursor`` and ``AsyncCursor`` (``ClientCursor`` and ``RawCursor``
inherit them; ``Connection.execute`` goes through them), the server-side cursors' own
``execute``, and ``stream`` (rows as they arrive: the span ends with the rows). A pool
(``psycopg_pool``) hands out ordinary connections, traced the same way.
``db.namespace`` is the database name, ``server.address``/``server.port`` where libpq
connected, read once per connection.
"""

from __future__ import annotations

import functools
import weakref
from types import MethodType
from typing import TYPE_CHECKING, Any

from telemetry_run._version import __version__
from telemetry_run.instrumentors.base import Instrumentor, guard
from telemetry_run.instrumentors.dbapi import DbApi, DbInfo

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["PsycopgInstrumentor", "postgresql_info"]

_infos: weakref.WeakKeyDictionary[Any, DbInfo] = weakref.WeakKeyDictionary()


def postgresql_info(connection: Any) -> DbInfo:
    """A PostgreSQL connection's ``DbInfo`` (psycopg 3 and psycopg2 both have ``.info``)."""
    info = connection.info
    port = info.port
    return DbInfo("postgresql", info.dbname, info.host, int(port) if port else None)


def _info(cursor: Any) -> DbInfo | None:
    connection = cursor.connection
    found = _infos.get(connection)
    if found is None:
        with guard("psycopg: connection info"):
            found = _infos[connection] = postgresql_info(connection)
    return found


class PsycopgInstrumentor(Instrumentor):
    """Patches the execute methods of psycopg's cursor classes."""

    db: DbApi

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import psycopg

        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.db = DbApi.from_config(tracer, "psycopg", config, self.enabled)
        # ``execute``, which every statement calls, is replaced by a plain function (no wrapt
        # proxy: see ``Patcher.replace``); the other methods are wrapped.
        for cls in (psycopg.Cursor, psycopg.ServerCursor):
            self.patcher.replace(cls, "execute", self._traced_execute)
        self.patcher.wrap(psycopg, "Cursor.executemany", self._executemany)
        for name in ("AsyncCursor.execute", "AsyncServerCursor.execute"):
            self.patcher.wrap(psycopg, name, self._execute_async)
        self.patcher.wrap(psycopg, "AsyncCursor.executemany", self._executemany_async)
        for name in ("Cursor.stream", "AsyncCursor.stream"):
            self.patcher.wrap(psycopg, name, self._stream)

    def _traced_execute(self, original: Callable[..., Any]) -> Callable[..., Any]:
        db = self.db

        @functools.wraps(original)
        def execute(cursor: Any, *args: Any, **kwargs: Any) -> Any:
            return db.execute(MethodType(original, cursor), _info(cursor), cursor, args, kwargs)

        return execute

    def _executemany(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        return self.db.execute(wrapped, _info(instance), instance, args, kwargs, many=True)

    def _stream(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        return self.db.stream(wrapped, _info(instance), instance, args, kwargs)

    def _execute_async(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        return self.db.execute_async(wrapped, _info(instance), instance, args, kwargs)

    def _executemany_async(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        info = _info(instance)
        return self.db.execute_async(wrapped, info, instance, args, kwargs, many=True)
