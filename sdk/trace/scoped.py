"""``start_as_current_span``: a span that is the current one for a block or a call.

A class rather than a generator-based context manager: entering and leaving it is a couple of
attribute stores, which matters on a path every request takes. The SDK's Tracer and the no-op
and proxy tracers share it through the StartsCurrentSpans mixin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, ClassVar, Final, TypeVar

from telemetry_run.sdk._log import logger as _logger
from telemetry_run.sdk.context import _SPAN, Context
from telemetry_run.sdk.trace import api
from telemetry_run.sdk.trace.api import Attributes, Link, Span, SpanKind
from telemetry_run.sdk.trace.span import RecordingSpan, finish_with_exception

__all__ = ["CurrentSpan", "StartsCurrentSpans"]

_INTERNAL: Final = SpanKind.INTERNAL
F = TypeVar("F", bound=Callable[..., Any])


_CO_COROUTINE: Final = 0x80  # inspect.CO_COROUTINE, without importing inspect at start-up


def _is_coroutine_function(func: Callable[..., Any]) -> bool:
    code = getattr(func, "__code__", None)
    if code is not None:
        return bool(code.co_flags & _CO_COROUTINE)
    import inspect  # partials and callables objects: the full answer

    return inspect.iscoroutinefunction(func)


class StartsCurrentSpans:
    """``start_as_current_span`` for any tracer that implements ``start_span``.

    A tracer may name a CurrentSpan subclass of its own in ``current_span_type`` (the SDK's
    makes a span its sampler drops anyway without a call to ``start_span``).
    """

    current_span_type: ClassVar[type[CurrentSpan]]

    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> CurrentSpan:
        tracer: api.Tracer = self  # type: ignore[assignment]  # mixed into api.Tracer subclasses
        if (
            context is None
            and attributes is None
            and links is None
            and start_time is None
            and kind is _INTERNAL
            and record_exception
            and set_status_on_exception
        ):
            # The common call: built without an __init__ frame, started without argument unpacking.
            current: CurrentSpan = self.current_span_type()
            current._tracer = tracer
            current._name = name
            current._args = None
            current._end_on_exit = end_on_exit
            return current
        args = (
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        return _make(self.current_span_type, tracer, name, args, end_on_exit)


class CurrentSpan:
    """``with tracer.start_as_current_span(...) as span`` and ``@tracer.start_as_current_span``.

    As a decorator it starts a fresh span per call, for plain and ``async`` functions alike.
    """

    __slots__ = ("_args", "_end_on_exit", "_name", "_span", "_token", "_tracer")

    # Made without arguments and filled in by the tracer (see _make): a class with object's
    # __init__ is created by a C call, cheaper than any frame of ours on every span.
    __init__ = object.__init__

    _tracer: api.Tracer
    _name: str
    _args: _StartArgs | None  # start_span's arguments after the name; None: all defaults
    _end_on_exit: bool

    def __enter__(self) -> Span:
        args = self._args
        span = self._span = (
            self._tracer.start_span(self._name)
            if args is None
            else self._tracer.start_span(self._name, *args)
        )
        self._token = _SPAN.set(span)
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if exc is not None and type(span) is RecordingSpan and span._end_time is None:
            finish_with_exception(span, exc)
        try:
            _SPAN.reset(self._token)
        except (ValueError, RuntimeError):
            # Left in another context than it was entered in (a generator resumed elsewhere):
            # tolerated, never raised (opentelemetry-python#2606).
            _logger.debug("span %r left in another context than it was entered in", self._name)
        if self._end_on_exit:
            span.end()

    def __call__(self, func: F) -> F:
        tracer, name, args, end_on_exit = self._tracer, self._name, self._args, self._end_on_exit
        current_span = functools.partial(_make, type(self))
        if _is_coroutine_function(func):

            @functools.wraps(func)
            async def async_wrapper(*a: Any, **kw: Any) -> Any:
                with current_span(tracer, name, args, end_on_exit):
                    return await func(*a, **kw)

            return async_wrapper  # type: ignore[return-value]  # same signature as func

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with current_span(tracer, name, args, end_on_exit):
                return func(*a, **kw)

        return wrapper  # type: ignore[return-value]  # same signature as func


_StartArgs = tuple[
    Context | None, SpanKind, Attributes, Sequence[Link] | None, int | None, bool, bool
]


def _make(
    cls: type[CurrentSpan],
    tracer: api.Tracer,
    name: str,
    args: _StartArgs | None,
    end_on_exit: bool,
) -> CurrentSpan:
    current: CurrentSpan = cls()
    current._tracer = tracer
    current._name = name
    current._args = args
    current._end_on_exit = end_on_exit
    return current


StartsCurrentSpans.current_span_type = CurrentSpan
