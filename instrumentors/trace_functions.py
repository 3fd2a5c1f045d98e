"""Spans around functions the user names, without changing their code.

``TELEMETRY_RUN_TRACE_FUNCTIONS="pkg.mod:func,pkg.mod:Class.method"`` wraps each one when its
module is imported (a post-import hook: nothing is imported for it) with an INTERNAL span
named after it (``func``, ``Class.method``), ``code.function.name`` holding the full name. An
exception is recorded on the span and passes through unchanged.

Sync and async functions get a span per call; a generator or async generator function gets one
span from its first step to its end (exhausted, closed, or raising), current only while the
generator body runs, so the consumer's code between two items is not inside it. A generator
that is never iterated makes no span.

An entry that is not ``module:qualname``, or does not resolve to a function once its module is
imported, gets one warning naming the variable and the entry and is skipped; an entry whose
module is never imported does nothing.

The instrumentor is triggered by the import of ``telemetry_run`` itself, so it is loaded at
start-up: it imports nothing until the variable names something.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.instrumentors.base import Instrumentor, guard
from telemetry_run.sdk._log import logger
from telemetry_run.sdk._printable import quote

if TYPE_CHECKING:
    from types import ModuleType

    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import Span, Tracer, TracerProvider

__all__ = ["TRACE_FUNCTIONS", "TraceFunctionsInstrumentor", "parse_entry"]

TRACE_FUNCTIONS: Final = "TELEMETRY_RUN_TRACE_FUNCTIONS"
_SCOPE: Final = "telemetry_run.instrumentors.trace_functions"

# co_flags of the function kinds (inspect's CO_* values, without importing inspect).
_CO_GENERATOR: Final = 0x20
_CO_COROUTINE: Final = 0x80
_CO_ASYNC_GENERATOR: Final = 0x200


def parse_entry(entry: str) -> tuple[str, str] | None:
    """``"pkg.mod:Class.method"`` as ``("pkg.mod", "Class.method")``; None when malformed."""
    module, sep, qualname = entry.strip().partition(":")
    parts = [*module.split("."), *qualname.split(".")]
    if not sep or not all(part.isidentifier() for part in parts):
        return None
    return module, qualname


def _warn(entry: str, why: str) -> None:
    logger.warning("%s: %s %s; it is not traced", TRACE_FUNCTIONS, quote(entry), why)


class TraceFunctionsInstrumentor(Instrumentor):
    """Wraps the functions ``TELEMETRY_RUN_TRACE_FUNCTIONS`` names when their module is imported."""

    tracer: Tracer

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        entries: tuple[str, ...] = config.get(TRACE_FUNCTIONS) or ()
        by_module: dict[str, list[tuple[str, str]]] = {}
        for entry in entries:
            parsed = parse_entry(entry)
            if parsed is None:
                _warn(entry, "is not module:function or module:Class.method")
                continue
            by_module.setdefault(parsed[0], []).append((entry, parsed[1]))
        if not by_module:
            return  # nothing named (the usual case): nothing more is imported or hooked
        self.tracer = tracer_provider.get_tracer(_SCOPE)
        from telemetry_run._import_hooks import register_post_import_hook

        for module_name, names in by_module.items():
            hook = guard(f"trace_functions: wrap {module_name}")(self._hook(names))
            register_post_import_hook(hook, module_name)

    def _hook(self, names: list[tuple[str, str]]) -> Callable[[ModuleType], None]:
        def on_import(module: ModuleType) -> None:
            for entry, qualname in names:
                self._wrap(module, entry, qualname)

        return on_import

    def _wrap(self, module: ModuleType, entry: str, qualname: str) -> None:
        target: Any = module
        for part in qualname.split("."):
            found = _lookup(target, part)
            if found is _MISSING:
                _warn(entry, f"does not resolve: {module.__name__} has no {qualname}")
                return
            target = found
        function = getattr(target, "__func__", target)  # staticmethod, classmethod
        code = getattr(function, "__code__", None)
        if code is None:
            _warn(entry, f"is a {type(target).__name__}, not a function")
            return
        name = qualname
        attributes = {"code.function.name": f"{module.__name__}.{qualname}"}
        flags = code.co_flags
        if flags & _CO_ASYNC_GENERATOR:
            wrapper = self._generator_wrapper(name, attributes, _traced_async_generator)
        elif flags & _CO_COROUTINE:
            wrapper = self._coroutine_wrapper(name, attributes)
        elif flags & _CO_GENERATOR:
            wrapper = self._generator_wrapper(name, attributes, _traced_generator)
        else:
            wrapper = self._function_wrapper(name, attributes)
        self.patcher.wrap(module, qualname, wrapper)

    def _start(self, name: str, attributes: dict[str, str]) -> Span | None:
        with guard("trace_functions: start span"):
            from telemetry_run.sdk.trace.api import SpanKind

            return self.tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)
        return None

    def _function_wrapper(self, name: str, attributes: dict[str, str]) -> Any:
        from telemetry_run.sdk.trace.current import use_span

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            span = self._start(name, attributes) if self.enabled() else None
            if span is None:
                return wrapped(*args, **kwargs)
            with use_span(span, end_on_exit=True):
                return wrapped(*args, **kwargs)

        return wrapper

    def _coroutine_wrapper(self, name: str, attributes: dict[str, str]) -> Any:
        from telemetry_run.sdk.trace.current import use_span

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            async def traced() -> Any:
                # Started when awaited: in the awaiting task, as the body itself would run.
                span = self._start(name, attributes) if self.enabled() else None
                if span is None:
                    return await wrapped(*args, **kwargs)
                with use_span(span, end_on_exit=True):
                    return await wrapped(*args, **kwargs)

            return traced()

        return wrapper

    def _generator_wrapper(
        self,
        name: str,
        attributes: dict[str, str],
        traced: Callable[[Any, Callable[[], Span | None]], Any],
    ) -> Any:
        """For a generator function (``traced``: ``_traced_generator``) or an async one
        (``_traced_async_generator``): the span covers the iteration, not the call."""

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            generator = wrapped(*args, **kwargs)
            if not self.enabled():
                return generator
            return traced(generator, lambda: self._start(name, attributes))

        return wrapper


_MISSING: Final = object()


def _lookup(owner: Any, name: str) -> Any:
    """``owner.name`` without binding a method (a class's own ``__dict__``, along its MRO)."""
    if isinstance(owner, type):
        for cls in owner.__mro__:
            if name in vars(cls):
                return vars(cls)[name]
    return getattr(owner, name, _MISSING)


def _failed(span: Span, exc: BaseException) -> None:
    from telemetry_run.sdk.trace.api import Status, StatusCode

    with guard("trace_functions: record exception"):
        span.record_exception(exc, escaped=True)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _traced_generator(generator: Generator[Any, Any, Any], start: Callable[[], Span | None]) -> Any:
    """Yields what ``generator`` yields, its span current only while its body runs."""
    from telemetry_run.sdk.context import _SPAN

    span = start()
    if span is None:
        return (yield from generator)
    sent: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            token = _SPAN.set(span)
            try:
                item = generator.send(sent) if thrown is None else generator.throw(thrown)
            except StopIteration as stop:
                return stop.value
            finally:
                _reset(_SPAN, token)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                token = _SPAN.set(span)
                try:
                    generator.close()
                finally:
                    _reset(_SPAN, token)
                raise
            except BaseException as exc:  # noqa: BLE001  # thrown in: handed to the generator
                thrown = exc
    except GeneratorExit:
        raise
    except BaseException as exc:
        _failed(span, exc)
        raise
    finally:
        span.end()


async def _traced_async_generator(
    generator: AsyncGenerator[Any, Any], start: Callable[[], Span | None]
) -> AsyncGenerator[Any, Any]:
    """As ``_traced_generator``, for an async generator."""
    from telemetry_run.sdk.context import _SPAN

    span = start()
    sent: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            token = _SPAN.set(span) if span is not None else None
            try:
                if thrown is None:
                    item = await generator.asend(sent)
                else:
                    item = await generator.athrow(thrown)
            except StopAsyncIteration:
                return
            finally:
                _reset(_SPAN, token)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                token = _SPAN.set(span) if span is not None else None
                try:
                    await generator.aclose()
                finally:
                    _reset(_SPAN, token)
                raise
            except BaseException as exc:  # noqa: BLE001  # thrown in: handed to the generator
                thrown = exc
    except GeneratorExit:
        raise
    except BaseException as exc:
        if span is not None:
            _failed(span, exc)
        raise
    finally:
        if span is not None:
            span.end()


def _reset(variable: Any, token: Any) -> None:
    if token is None:
        return
    with suppress(ValueError):  # resumed in another context than it was suspended in
        variable.reset(token)
