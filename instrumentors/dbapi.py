"""DB-API (PEP 249): one CLIENT span per ``execute``/``executemany``/``callproc``, any driver.

``DbApi`` is the toolkit's client site for a database, in the ``db`` layer: a statement run
inside another call of that layer (SQLAlchemy's, or a driver method calling another) makes no
span of its own. Each span carries the connection's ``db.system.name``, ``db.namespace``,
``server.address``/``server.port`` (a ``DbInfo``, worked out once per connection) and the
statement's ``db.query.text`` with every literal replaced by ``?`` (``_sql``: the values are
never recorded), ``db.operation.name`` and, for a plain one-table statement,
``db.collection.name``; ``db.operation.batch.size`` for an ``executemany`` of a sized sequence
(a generator of 10k rows is passed on untouched, never materialised). A failed statement has
``error.type`` and the driver's SQLSTATE as ``db.response.status_code``; its message is
recorded without PostgreSQL's ``DETAIL`` lines, which quote the row's values.

With ``TELEMETRY_RUN_SQLCOMMENTER=true`` the statement sent carries the span's ``traceparent``
(and ``tracestate``) as a trailing sqlcommenter comment, ``/*traceparent='00-...-01'*/``,
so the database's own logs join the trace. It is off by default: a statement text that changes
defeats some servers' statement caches.

A driver's instrumentor calls ``DbApi.execute`` (or ``execute_async``) from its patched method;
a third party with a driver we do not know wraps its ``connect`` with ``wrap_connect``, which
hands out the connections behind a proxy whose cursors are traced. A driver whose connection
and cursor are C types that neither a patch nor a proxy can serve (sqlite3, psycopg2) passes
traced subclasses as the factory arguments its ``connect`` and ``cursor`` take:
``TracedClasses``, ``cursor_subclass`` and ``with_factory`` are those steps, shared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from telemetry_run.instrumentors import _http, _sql
from telemetry_run.instrumentors.base import _report, guard
from telemetry_run.instrumentors.plugin import SQLCOMMENTER
from telemetry_run.instrumentors.toolkit import StatusRules, client_call
from telemetry_run.sdk._redaction import scrub_text
from telemetry_run.sdk.trace.api import INVALID_SPAN, StatusCode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.base import Patcher
    from telemetry_run.instrumentors.toolkit import CallSite
    from telemetry_run.sdk.trace.api import Span, Tracer

__all__ = [
    "SQLCOMMENTER",
    "TRACED",
    "DbApi",
    "DbInfo",
    "TracedClasses",
    "commented",
    "cursor_subclass",
    "sqlcommenter_comment",
    "with_factory",
    "wrap_connect",
]

#: The layer of database calls: one span per statement, whoever runs it.
LAYER: Final = "db"
_COMMENTED: Final = ("traceparent", "tracestate")  # never baggage: it is the app's data
#: The class attribute that marks a traced subclass (asked for again, it is used as it is).
TRACED: Final = "_telemetry_run_traced"


class DbInfo:
    """The attributes every span of one connection carries (worked out once per connection)."""

    __slots__ = ("attributes", "namespace", "statements", "system")

    def __init__(
        self,
        system: str,
        namespace: str | None = None,
        address: str | None = None,
        port: int | None = None,
    ) -> None:
        self.system = system
        self.namespace = namespace
        attributes: dict[str, Any] = {"db.system.name": system}
        if namespace:
            attributes["db.namespace"] = namespace
        if address:
            attributes["server.address"] = address
            if port:
                attributes["server.port"] = int(port)
        self.attributes: Mapping[str, Any] = attributes
        #: A statement's attributes and span name, as the last ones run on this connection
        #: were described (a service runs the same few statements again and again).
        self.statements: dict[str, tuple[dict[str, Any], str]] = {}


def _statement_text(statement: Any, context: Any) -> str | None:
    """The SQL of ``statement``: a str, bytes, or a composed query (``as_string``)."""
    if isinstance(statement, str):
        return statement
    if isinstance(statement, bytes):
        return statement.decode("utf-8", "replace")
    as_string = getattr(statement, "as_string", None)
    if as_string is not None and context is not None:
        text = as_string(context)
        return text if isinstance(text, str) else None
    return None


#: Statements remembered per connection (``DbInfo.statements``), and the longest remembered.
_STATEMENTS: Final = 128
_STATEMENT_LENGTH: Final = 4096


def _attributes(
    info: DbInfo, text: str | None, batch: int | None, procedure: str | None, carrier: Any
) -> dict[str, Any]:
    if text is not None and procedure is None and batch is None:
        known = info.statements.get(text)
        if known is not None:
            return dict(known[0])
    attributes = dict(info.attributes)
    if procedure is not None:
        attributes["db.stored_procedure.name"] = procedure
    elif text is not None:
        described = _sql.describe(text)
        attributes["db.query.text"] = described.text
        if described.operation:
            attributes["db.operation.name"] = described.operation
        if described.collection:
            attributes["db.collection.name"] = described.collection
    if batch is not None and batch >= 2:
        attributes["db.operation.batch.size"] = batch
    return attributes


def _span_name(
    attributes: Mapping[str, Any],
    info: DbInfo,
    text: str | None,
    batch: int | None,
    procedure: str | None,
    carrier: Any,
) -> str:
    """``{db.operation.name} {target}``: the table, the procedure, else the database."""
    if procedure is not None:
        return procedure
    if text is not None and batch is None:
        known = info.statements.get(text)
        if known is not None:
            return known[1]
    operation = attributes.get("db.operation.name")
    target = attributes.get("db.collection.name") or info.namespace
    if operation:
        name = f"{operation} {target}" if target else str(operation)
    else:
        name = str(target or info.system)
    if text is not None and batch is None and len(text) <= _STATEMENT_LENGTH:
        statements = info.statements
        if len(statements) >= _STATEMENTS:
            statements.clear()  # atomic under threads, as ``_sql``'s cache is
        statements[text] = (dict(attributes), name)
    return name


def _carrier(
    info: DbInfo, text: str | None, batch: int | None, procedure: str | None, carrier: Any
) -> Any:
    return carrier


def _no_code(span: Span, code: Any, details: str | None) -> None:
    return None


def _primary(message: str) -> str:
    """The first line of a database error: PostgreSQL's ``DETAIL:`` lines quote the row's
    values (``Key (email)=(bob@example.org) already exists``), the first line names the rule."""
    return message.strip().split("\n", 1)[0].strip()


def _db_exception(span: Span, exc: BaseException, has_code: bool) -> None:
    """The exception recorded without its detail lines, its class as ``error.type``, the
    SQLSTATE as ``db.response.status_code`` when the driver has one."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001  # an exception whose __str__ raises is still recorded
        message = ""
    first = _primary(message)
    details: dict[str, Any] | None = None
    if first != message.strip():
        import traceback  # on the first detailed database error, not at start-up

        trace = "".join(traceback.format_exception(exc)).replace(message, first)
        details = {
            "exception.message": scrub_text(first),
            "exception.stacktrace": scrub_text(trace),
        }
    span.record_exception(exc, details, escaped=True)
    span.set_attribute("error.type", _http.exception_type(exc))
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if code is None:
        code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        span.set_attribute("db.response.status_code", str(code))
    span.set_status(StatusCode.ERROR, scrub_text(f"{type(exc).__name__}: {first}"))


#: A database call: an escaping exception is the error; there are no response codes.
DB: Final = StatusRules(_no_code, _db_exception)


def sqlcommenter_comment(carrier: Mapping[str, str]) -> str:
    """The sqlcommenter comment for the injected ``carrier`` (keys sorted, values URL-quoted)."""
    pairs = [
        f"{quote(key, safe='')}='{quote(carrier[key], safe='')}'"
        for key in sorted(carrier)
        if key in _COMMENTED
    ]
    return f"/*{','.join(pairs)}*/" if pairs else ""


def commented(statement: Any, carrier: Mapping[str, str]) -> Any:
    """``statement`` with the comment appended (before a final ``;``); others are left as is."""
    comment = sqlcommenter_comment(carrier)
    if not comment or not isinstance(statement, (str, bytes)):
        return statement
    text = statement if isinstance(statement, str) else statement.decode("utf-8", "replace")
    text = text.rstrip()
    text = f"{text[:-1]}{comment};" if text.endswith(";") else f"{text}{comment}"
    return text if isinstance(statement, str) else text.encode()


class DbApi:
    """The traced calls of one driver: each statement one CLIENT span of the ``db`` layer."""

    __slots__ = ("commenter", "enabled", "site")

    @classmethod
    def from_config(
        cls, tracer: Tracer, name: str, config: Config, enabled: Callable[[], bool]
    ) -> DbApi:
        """The driver ``name``'s calls, its instrumentor's ``enabled`` the gate, the statements
        commented when ``TELEMETRY_RUN_SQLCOMMENTER`` says so."""
        return cls(tracer, name, enabled=enabled, commenter=bool(config.get(SQLCOMMENTER)))

    def __init__(
        self, tracer: Tracer, name: str, *, enabled: Callable[[], bool], commenter: bool = False
    ) -> None:
        self.commenter = commenter
        #: The gate, the site's: checked once per statement as the statement's call starts
        #: (where built, the native start evaluates an instrumentor's ``enabled`` itself).
        self.enabled = enabled
        self.site: CallSite = client_call(
            tracer,
            name,
            attributes=_attributes,
            span_name=_span_name,
            carrier=_carrier,
            rules=DB,
            metric="db.client.operation.duration",
            layer=LAYER,
            enabled=enabled,
            noun="statement",
        )

    def _begin(
        self,
        info: DbInfo | None,
        context: Any,
        args: tuple[Any, ...],
        many: bool,
        procedure: bool,
    ) -> tuple[tuple[Any, ...], dict[str, Any] | None, tuple[Any, ...]] | None:
        """The arguments of ``site.call`` and of the driver's method, or None: untraced (our
        failure is reported; not ``guard``: this runs for every statement, a try is free)."""
        try:
            if info is None or not args:
                return None
            statement = args[0]
            batch = None
            if many and len(args) > 1 and hasattr(args[1], "__len__"):
                batch = len(args[1])
            carrier: dict[str, str] | None = {} if self.commenter and not procedure else None
            if procedure:
                return (info, None, None, str(statement), carrier), carrier, args
            text = _statement_text(statement, context)
            return (info, text, batch, None, carrier), carrier, args
        except Exception as exc:  # noqa: BLE001  # reported; the statement runs untraced
            _report(self.site.where_start, exc)
            return None

    def execute(
        self,
        wrapped: Callable[..., Any],
        info: DbInfo | None,
        context: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        many: bool = False,
        procedure: bool = False,
    ) -> Any:
        """Run the driver's ``wrapped(*args, **kwargs)`` as one traced statement.

        ``info`` describes the connection (None: not traced); ``context`` is what a composed
        query renders against (the cursor or connection); ``args[0]`` is the statement (or,
        with ``procedure``, the procedure's name), ``args[1]`` its parameters.
        """
        if (
            args
            and type(args[0]) is str
            and info is not None
            and not (many or procedure or self.commenter)
        ):  # the usual statement: its text as it is, no batch, nothing to comment (``_begin``)
            with self.site.call(info, args[0], None, None, None):
                return wrapped(*args, **kwargs)
        begun = self._begin(info, context, args, many, procedure)
        if begun is None:
            return wrapped(*args, **kwargs)
        call_args, carrier, args = begun
        with self.site.call(*call_args) as call:
            if carrier and call.span is not INVALID_SPAN:  # nested: the outer call comments
                args = (commented(args[0], carrier), *args[1:])
            return wrapped(*args, **kwargs)

    def stream(
        self,
        wrapped: Callable[..., Any],
        info: DbInfo | None,
        context: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """``execute`` for a method that returns the rows as a (sync or async) generator: the
        span lasts until the rows are exhausted, the stream raises, is closed or collected."""
        begun = self._begin(info, context, args, False, False)
        if begun is None:
            return wrapped(*args, **kwargs)
        call_args, carrier, args = begun
        call = self.site.start(*call_args)
        if call is None:
            return wrapped(*args, **kwargs)
        if carrier:
            args = (commented(args[0], carrier), *args[1:])
        try:
            rows = wrapped(*args, **kwargs)  # a generator: nothing runs yet
        except BaseException as exc:
            call.fail(exc)
            raise
        return self.site.stream(call, rows)

    async def execute_async(
        self,
        wrapped: Callable[..., Awaitable[Any]],
        info: DbInfo | None,
        context: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        many: bool = False,
    ) -> Any:
        """``execute`` for a coroutine method (an asyncio driver)."""
        begun = self._begin(info, context, args, many, False)
        if begun is None:
            return await wrapped(*args, **kwargs)
        call_args, carrier, args = begun
        with self.site.call(*call_args) as call:
            if carrier and call.span is not INVALID_SPAN:
                args = (commented(args[0], carrier), *args[1:])
            return await wrapped(*args, **kwargs)


def wrap_connect(
    patcher: Patcher,
    target: str | object,
    path: str,
    db: DbApi,
    describe: Callable[[Any, tuple[Any, ...], dict[str, Any]], DbInfo],
) -> None:
    """Patch a driver's ``connect`` (``target.path``): its connections come behind a proxy.

    ``describe(connection, args, kwargs)`` gives the connection's ``DbInfo`` from the
    connection and ``connect``'s arguments. The proxy passes everything through (``isinstance``
    still holds); only its cursors' ``execute``, ``executemany`` and ``callproc`` are traced.
    """
    from telemetry_run.instrumentors._wrapt import load_wrapt

    wrapt = load_wrapt()

    class TracedCursor(wrapt.ObjectProxy):  # type: ignore[misc,name-defined]
        """A cursor whose statements are traced; iterating it is the driver's own."""

        def __init__(self, cursor: Any, info: DbInfo) -> None:
            super().__init__(cursor)
            self._self_info = info

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            return db.execute(self.__wrapped__.execute, self._self_info, None, args, kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            method = self.__wrapped__.executemany
            return db.execute(method, self._self_info, None, args, kwargs, many=True)

        def callproc(self, *args: Any, **kwargs: Any) -> Any:
            method = self.__wrapped__.callproc
            return db.execute(method, self._self_info, None, args, kwargs, procedure=True)

        def __enter__(self) -> Any:
            self.__wrapped__.__enter__()
            return self

        def __iter__(self) -> Any:
            return iter(self.__wrapped__)

    class TracedConnection(wrapt.ObjectProxy):  # type: ignore[misc,name-defined]
        """A connection whose cursors are traced."""

        def __init__(self, connection: Any, info: DbInfo) -> None:
            super().__init__(connection)
            self._self_info = info

        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            return TracedCursor(self.__wrapped__.cursor(*args, **kwargs), self._self_info)

        def __enter__(self) -> Any:
            self.__wrapped__.__enter__()
            return self

    def connect(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        connection = wrapped(*args, **kwargs)
        info = None
        with guard(f"{db.site.name}: connect"):
            info = describe(connection, args, kwargs)
        return connection if info is None else TracedConnection(connection, info)

    patcher.wrap(target, path, connect)


class TracedClasses:
    """The traced subclasses of a driver's classes, each made once per class the app asks for.

    ``get(base, make)`` gives ``make(base)``'s class, named and placed as ``base`` (what the
    application prints or checks is the class it chose), or ``base`` itself when it is traced
    already (a traced class handed back to ``connect`` or ``cursor``).
    """

    __slots__ = ("made",)

    def __init__(self) -> None:
        self.made: dict[type, type] = {}

    def get(self, base: type, make: Callable[[type], type]) -> type:
        if getattr(base, TRACED, False):
            return base
        found = self.made.get(base)
        if found is None:
            found = make(base)
            setattr(found, TRACED, True)
            found.__name__ = found.__qualname__ = base.__name__
            found.__module__ = base.__module__
            self.made[base] = found
        return found


def cursor_subclass(
    db: DbApi,
    base: type,
    info: Callable[[Any], DbInfo | None],
    *,
    renders: bool = False,
    procedures: bool = False,
) -> type:
    """A subclass of the cursor class ``base`` whose ``execute``/``executemany`` (and, with
    ``procedures``, ``callproc``) are traced. ``info(cursor)`` is its connection's ``DbInfo``;
    with ``renders`` a composed query renders against the cursor (``as_string(cursor)``)."""

    class TracedCursor(base):  # type: ignore[misc]
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            context = self if renders else None
            return db.execute(super().execute, info(self), context, args, kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            context = self if renders else None
            method = super().executemany
            return db.execute(method, info(self), context, args, kwargs, many=True)

        if procedures:

            def callproc(self, *args: Any, **kwargs: Any) -> Any:
                context = self if renders else None
                method = super().callproc
                return db.execute(method, info(self), context, args, kwargs, procedure=True)

    return TracedCursor


def with_factory(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    position: int,
    keyword: str,
    traced: Callable[[Any], type],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args`` and ``kwargs`` with the factory argument (at ``position``, else ``keyword``)
    replaced by ``traced(given)``; ``given`` is None when the caller passed none. The caller's
    ``kwargs`` are not changed."""
    if len(args) > position:
        return (*args[:position], traced(args[position]), *args[position + 1 :]), kwargs
    return args, {**kwargs, keyword: traced(kwargs.get(keyword))}
