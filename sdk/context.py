"""Execution context: one ``contextvars`` variable holding an immutable mapping.

Threads and asyncio tasks each see their own current context because contextvars does that for
us; the span, the baggage and the suppression flag are values in the mapping. The shape mirrors
the OpenTelemetry context API so code written against it ports by changing imports.
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from telemetry_run.sdk._lazy import lazy_exports
from telemetry_run.sdk._log import logger as _logger

if TYPE_CHECKING:
    from telemetry_run.sdk._executor import ContextThreadPoolExecutor

__all__ = [
    "SPAN_KEY",
    "SUPPRESS_INSTRUMENTATION_KEY",
    "Context",
    "ContextThreadPoolExecutor",
    "Token",
    "attach",
    "create_key",
    "detach",
    "get_current",
    "get_value",
    "is_suppressed",
    "set_value",
    "suppress_instrumentation",
    "wrap_with_current_context",
]


P = ParamSpec("P")
R = TypeVar("R")


class Context(dict[str, object]):
    """An immutable mapping of context values; ``set_value`` returns a new one."""

    __slots__ = ()

    def __setitem__(self, key: str, value: object) -> None:
        raise ValueError("Context is immutable: use set_value()")

    def __delitem__(self, key: str) -> None:
        raise ValueError("Context is immutable")


_EMPTY = Context()
_dict_setitem = dict.__setitem__

SPAN_KEY = "telemetry_run.current_span"
SUPPRESS_INSTRUMENTATION_KEY = "telemetry_run.suppress_instrumentation"

# The current span changes on every span start and end, the other values rarely; so the span
# has a variable of its own (one ``ContextVar.set`` instead of copying the mapping), and the
# effective context is the mapping with SPAN_KEY taken from that variable.
_CURRENT: contextvars.ContextVar[Context] = contextvars.ContextVar(
    "telemetry_run_context", default=_EMPTY
)
_SPAN: contextvars.ContextVar[object] = contextvars.ContextVar("telemetry_run_span", default=None)
_current_get = _CURRENT.get
_span_get = _SPAN.get


class Token:
    """What ``attach`` returns and ``detach`` takes."""

    __slots__ = ("_context", "_span")

    def __init__(self, context: contextvars.Token[Context], span: contextvars.Token[object]):
        self._context = context
        self._span = span


def create_key(name: str) -> str:
    """A key that cannot collide with another component's key of the same name."""
    return f"{name}-{os.urandom(8).hex()}"


def get_current() -> Context:
    ctx = _current_get()
    span = _span_get()
    if ctx.get(SPAN_KEY) is span:
        return ctx
    new = Context(ctx)
    if span is None:
        dict.__delitem__(new, SPAN_KEY)
    else:
        _dict_setitem(new, SPAN_KEY, span)
    return new


def get_value(key: str, context: Context | None = None) -> object:
    if context is not None:
        return context.get(key)
    if key == SPAN_KEY:
        return _span_get()
    return _current_get().get(key)


def set_value(key: str, value: object, context: Context | None = None) -> Context:
    new = Context(context if context is not None else get_current())
    _dict_setitem(new, key, value)
    return new


def attach(context: Context) -> Token:
    """Make ``context`` current; returns the token that ``detach`` needs."""
    return Token(_CURRENT.set(context), _SPAN.set(context.get(SPAN_KEY)))


def detach(token: Token) -> None:
    """Restore the context that was current before ``attach``.

    Detaching in another context than the one that attached (a generator resumed elsewhere, a
    span held across tasks) is tolerated: it is logged at debug level, never raised, because the
    application did nothing wrong (opentelemetry-python#2606).
    """
    try:
        _SPAN.reset(token._span)
        _CURRENT.reset(token._context)
    except (ValueError, RuntimeError) as exc:
        detach_failed(exc)


def detach_failed(exc: ValueError | RuntimeError) -> None:
    """What ``detach`` says of a token it could not use (also for the toolkit's native exit)."""
    if isinstance(exc, ValueError):
        _logger.debug("context token detached in another context than it was attached in")
    else:
        _logger.debug("context token detached twice")


@contextmanager
def suppress_instrumentation() -> Iterator[None]:
    """Within this block no span records and instrumentors stay out (used by exporters)."""
    token = attach(set_value(SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        detach(token)


def is_suppressed(context: Context | None = None) -> bool:
    return (context if context is not None else _current_get()).get(
        SUPPRESS_INSTRUMENTATION_KEY
    ) is True


def wrap_with_current_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to the context current now, for running it later on another thread.

    ``executor.submit(wrap_with_current_context(work), arg)`` makes the spans ``work`` starts
    children of the span that was current at submit time. The same wrapped callable may run
    several times, even concurrently: each call attaches and detaches on its own.
    """
    captured = get_current()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = attach(captured)
        try:
            return fn(*args, **kwargs)
        finally:
            detach(token)

    return run


# ContextThreadPoolExecutor subclasses concurrent.futures' executor, whose import (with
# logging's) every instrumented process would otherwise pay at start-up: made on first use.
__getattr__ = lazy_exports(__name__, {"ContextThreadPoolExecutor": "telemetry_run.sdk._executor"})[
    0
]
