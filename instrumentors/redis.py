"""redis-py: one CLIENT span per command, and one per pipeline with its command count.

``Redis.execute_command`` is where every command of a client passes (``r.get``, ``r.hset``,
``execute_command`` by hand), sync and asyncio alike; a pipeline queues its commands without
sending them and sends them all in ``Pipeline.execute``, so the pipeline is one span
(``PIPELINE``, or ``MULTI`` for a transaction) with ``db.operation.batch.size``. A command a
pipeline sends on its own before the batch (loading its scripts) is a child span of it: it is
a round trip of its own.

A message broker's own commands (kombu's transport, under a Celery worker: the polling, the
unacked index, the result keys' upkeep) are traced only inside a span, as any command there; on
their own they would each be a one-span trace, several a second from an idle worker. They are
told by their pool: the first command on a pool kombu opened comes from kombu's code;
``TELEMETRY_RUN_REDIS_BROKER_ROOT_SPANS=true`` traces them everywhere.

``db.query.text`` is the command with every argument replaced by ``?``: values are never
recorded. With ``TELEMETRY_RUN_REDIS_CAPTURE_KEYS=true`` the arguments that are keys are kept
(the first argument of most commands, every argument of the multi-key ones such as ``MGET`` or
``DEL``, every other one of ``MSET``); what cannot be told apart stays ``?``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors.base import Instrumentor, _report
from telemetry_run.instrumentors.toolkit import PLAIN, StatusRules, client_call
from telemetry_run.sdk.context import SUPPRESS_INSTRUMENTATION_KEY, _current_get, _span_get

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import CallSite
    from telemetry_run.sdk.trace.api import Span, TracerProvider

__all__ = ["BROKER_ROOT_SPANS", "CAPTURE_KEYS", "RedisInstrumentor", "query_text"]

#: true keeps the keys in ``db.query.text`` (values are replaced by ``?`` whatever it says).
CAPTURE_KEYS: Final = "TELEMETRY_RUN_REDIS_CAPTURE_KEYS"
#: true traces a broker's own commands outside any span too (one-span traces).
BROKER_ROOT_SPANS: Final = "TELEMETRY_RUN_REDIS_BROKER_ROOT_SPANS"

#: Commands whose arguments are all keys.
_ALL_KEYS: Final = frozenset(
    {
        "DEL", "EXISTS", "MGET", "PFCOUNT", "PFMERGE", "RENAME", "RENAMENX", "SDIFF",
        "SDIFFSTORE", "SINTER", "SINTERSTORE", "SUNION", "SUNIONSTORE", "TOUCH", "UNLINK",
        "WATCH",
    }
)  # fmt: skip
#: Commands whose arguments alternate key, value.
_KEY_VALUE_PAIRS: Final = frozenset({"MSET", "MSETNX"})
#: Commands with no key at all (their first argument is not one either).
_NO_KEYS: Final = frozenset(
    {
        "AUTH", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DBSIZE", "ECHO", "EVAL",
        "EVALSHA", "FCALL", "FLUSHALL", "FLUSHDB", "FUNCTION", "HELLO", "INFO", "KEYS",
        "MULTI", "EXEC", "DISCARD", "PING", "PSUBSCRIBE", "PUBLISH", "SCAN", "SCRIPT",
        "SELECT", "SUBSCRIBE", "TIME", "UNWATCH",
    }
)  # fmt: skip


def _text(value: Any) -> str:
    if type(value) is str:  # a command's name, as redis-py passes it
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _command_name(args: Sequence[Any]) -> str:
    return _text(args[0]).upper() if args else ""


def query_text(args: Sequence[Any], capture_keys: bool) -> str:
    """The command as the Redis CLI writes it, each argument ``?`` unless it is a kept key."""
    if not args:
        return ""
    return _query_text(_command_name(args), args, capture_keys)


def _query_text(name: str, args: Sequence[Any], capture_keys: bool) -> str:
    rest = args[1:]
    if not capture_keys or not rest:
        return name + " ?" * len(rest)
    base = name.split(" ", 1)[0]
    if base in _NO_KEYS:
        keys: Iterable[bool] = (False for _ in rest)
    elif base in _ALL_KEYS:
        keys = (True for _ in rest)
    elif base in _KEY_VALUE_PAIRS:
        keys = (index % 2 == 0 for index in range(len(rest)))
    else:
        keys = (index == 0 for index in range(len(rest)))
    shown = (_text(arg) if key else "?" for arg, key in zip(rest, keys, strict=True))
    return " ".join((name, *shown))


#: Where a connection pool keeps its attributes, worked out on its first command (an attribute
#: of the pool: read per command, it costs less than a weak mapping's look-up).
_POOL_ATTRIBUTES: Final = "_telemetry_run_attributes"


def _connection_attributes(client: Any) -> dict[str, Any]:
    """The attributes of ``client``'s pool, a fresh dict: a span owns its attributes."""
    pool = client.connection_pool
    attributes: dict[str, Any] | None = getattr(pool, _POOL_ATTRIBUTES, None)
    if attributes is None:
        attributes = _pool_attributes(pool)
        try:
            setattr(pool, _POOL_ATTRIBUTES, attributes)
        except (AttributeError, TypeError):  # a pool with slots: worked out each time
            return attributes
    return attributes.copy()


def _pool_attributes(pool: Any) -> dict[str, Any]:
    """``db.namespace`` (the database index) and ``server.*`` from the pool's settings."""
    attributes: dict[str, Any] = {"db.system.name": "redis"}
    kwargs: Mapping[str, Any] = getattr(pool, "connection_kwargs", None) or {}
    attributes["db.namespace"] = str(kwargs.get("db", 0) or 0)
    host = kwargs.get("host")
    if host is not None:
        attributes["server.address"] = str(host)
        port = kwargs.get("port")
        if port is not None:
            attributes["server.port"] = int(port)
    elif kwargs.get("path"):  # a unix socket
        attributes["server.address"] = str(kwargs["path"])
    return attributes


#: Where a connection pool keeps whether it is a message broker's (worked out once per pool).
_POOL_BROKER: Final = "_telemetry_run_broker"
#: The packages whose commands are a broker's own: kombu (Celery's transport).
_BROKER_PACKAGES: Final = ("kombu.",)
#: The frames between a command's caller and the check: redis-py's, ours, wrapt's.
_PASSED_THROUGH: Final = ("redis.", "telemetry_run.", "wrapt.")


def _is_broker_pool(pool: Any) -> bool:
    """True for a pool a broker's transport uses: its first command came from the broker.

    A pool kombu opens is used by kombu alone (the client it makes of it is its own), so the
    caller of the pool's first command, past redis-py's frames and ours, tells whose it is.
    """
    broker: bool | None = getattr(pool, _POOL_BROKER, None)
    if broker is None:
        broker = False
        frame = sys._getframe(1)
        while frame is not None:
            module = frame.f_globals.get("__name__")
            if not isinstance(module, str) or not module.startswith(_PASSED_THROUGH):
                broker = isinstance(module, str) and module.startswith(_BROKER_PACKAGES)
                break
            frame = frame.f_back  # type: ignore[assignment]
        if hasattr(pool, "__dict__"):  # a pool with slots: worked out each time
            setattr(pool, _POOL_BROKER, broker)
    return broker


def _span_name(attributes: Mapping[str, Any], *args: Any) -> str:
    """A command's or a pipeline's span is named by ``db.operation.name`` (a str already)."""
    name: str = attributes["db.operation.name"]
    return name


def _error(span: Span, exc: BaseException, has_code: bool) -> None:
    """The exception recorded; a server's error reply also gives its prefix (``WRONGTYPE``)."""
    PLAIN.exception(span, exc, has_code)
    reply = getattr(sys.modules.get("redis.exceptions"), "ResponseError", None)
    if reply is not None and isinstance(exc, reply):
        prefix = str(exc).split(" ", 1)[0]
        if prefix.isupper():
            span.set_attribute("db.response.status_code", prefix)


def _no_code(span: Span, code: Any, details: str | None) -> None:
    return None


REDIS: Final = StatusRules(_no_code, _error)


class RedisInstrumentor(Instrumentor):
    """Patches ``execute_command`` and ``Pipeline.execute``, sync and asyncio clients alike."""

    command_site: CallSite
    pipeline_site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import redis.asyncio.client
        import redis.client

        capture_keys = bool(config.get(CAPTURE_KEYS))
        self._broker_roots = bool(config.get(BROKER_ROOT_SPANS))

        def command_attributes(client: Any, args: Sequence[Any]) -> dict[str, Any]:
            # ``_connection_attributes``, inlined: it runs per command
            pool = client.connection_pool
            cached: dict[str, Any] | None = getattr(pool, _POOL_ATTRIBUTES, None)
            attributes = cached.copy() if cached is not None else _connection_attributes(client)
            first = args[0] if args else ""  # ``_command_name``, inlined: it runs per command
            name = (first if type(first) is str else _text(first)).upper()
            attributes["db.operation.name"] = name
            rest = len(args) - 1
            attributes["db.query.text"] = (
                _query_text(name, args, capture_keys)
                if capture_keys and rest > 0
                else name + " ?" * rest
            )
            return attributes

        def pipeline_attributes(pipeline: Any) -> dict[str, Any]:
            attributes = _connection_attributes(pipeline)
            stack = pipeline.command_stack
            # asyncio's Pipeline says is_transaction (its ``transaction`` is a method)
            flag = getattr(pipeline, "is_transaction", None)
            transaction = (flag if isinstance(flag, bool) else pipeline.transaction) or (
                pipeline.explicit_transaction
            )
            attributes["db.operation.name"] = "MULTI" if transaction else "PIPELINE"
            if len(stack) > 1:  # the conventions: a batch has two operations or more
                attributes["db.operation.batch.size"] = len(stack)
            attributes["db.query.text"] = "\n".join(
                query_text(command[0], capture_keys) for command in stack
            )
            return attributes

        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.command_site = client_call(
            tracer,
            "redis",
            attributes=command_attributes,
            span_name=_span_name,
            layer=None,
            rules=REDIS,
            metric="db.client.operation.duration",
            enabled=None,  # ``_command`` checks the gate, inlined
        )
        self.pipeline_site = client_call(
            tracer,
            "redis",
            attributes=pipeline_attributes,
            span_name=_span_name,
            layer=None,
            rules=REDIS,
            metric="db.client.operation.duration",
            enabled=self.enabled,
            noun="pipeline",
        )
        self.patcher.wrap(redis.client, "Redis.execute_command", self._command)
        self.patcher.wrap(redis.client, "Pipeline.immediate_execute_command", self._command)
        self.patcher.wrap(redis.client, "Pipeline.execute", self._pipeline)
        asyncio_client = redis.asyncio.client
        self.patcher.wrap(asyncio_client, "Redis.execute_command", self._acommand)
        self.patcher.wrap(asyncio_client, "Pipeline.immediate_execute_command", self._acommand)
        self.patcher.wrap(asyncio_client, "Pipeline.execute", self._apipeline)

    def _broker_outside_a_span(self, client: Any) -> bool:
        """A broker's own command with no span around it: not traced (a one-span trace each).

        ``_command`` inlines the first steps: every command outside a span passes there.
        """
        if self._broker_roots or _span_get() is not None:
            return False
        return self._broker_pool(client)

    def _broker_pool(self, client: Any) -> bool:
        """Whether ``client``'s pool is a broker's; any failure of ours says no (reported)."""
        try:
            pool = client.connection_pool
            broker: bool | None = getattr(pool, _POOL_BROKER, None)
            return broker if broker is not None else _is_broker_pool(pool)
        except Exception as exc:  # noqa: BLE001  # reported; the command is traced as any
            _report("redis: broker check", exc)
            return False

    def _command(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        # ``self.enabled()``, inlined (the site has no gate): it runs per command
        if not self.active or _current_get().get(SUPPRESS_INSTRUMENTATION_KEY) is True:
            return wrapped(*args, **kwargs)
        if _span_get() is None and not self._broker_roots:  # the broker check, inlined
            broker = getattr(getattr(instance, "connection_pool", None), _POOL_BROKER, None)
            if broker or (broker is None and self._broker_pool(instance)):
                return wrapped(*args, **kwargs)
        with self.command_site.call(instance, args):
            return wrapped(*args, **kwargs)

    async def _acommand(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        if not self.active or _current_get().get(SUPPRESS_INSTRUMENTATION_KEY) is True:
            return await wrapped(*args, **kwargs)  # as ``_command``
        if _span_get() is None and not self._broker_roots:
            broker = getattr(getattr(instance, "connection_pool", None), _POOL_BROKER, None)
            if broker or (broker is None and self._broker_pool(instance)):
                return await wrapped(*args, **kwargs)
        with self.command_site.call(instance, args):
            return await wrapped(*args, **kwargs)

    def _pipeline(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        if (
            not self.enabled()
            or not (instance.command_stack or instance.watching)  # nothing to send: no call
            or self._broker_outside_a_span(instance)
        ):
            return wrapped(*args, **kwargs)
        with self.pipeline_site.call(instance):
            return wrapped(*args, **kwargs)

    async def _apipeline(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        if (
            not self.enabled()
            or not (instance.command_stack or instance.watching)
            or self._broker_outside_a_span(instance)
        ):
            return await wrapped(*args, **kwargs)
        with self.pipeline_site.call(instance):
            return await wrapped(*args, **kwargs)
