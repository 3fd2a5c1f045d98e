"""gRPC: a CLIENT span for every call and a SERVER span for every handled call, linked through
the trace context carried in the call's metadata.

Interceptors are grpc's supported hook, and they are fixed when a channel or server is made, so
the patch points are the functions that make them: ``grpc.insecure_channel`` and
``grpc.secure_channel`` return the channel wrapped by ``grpc.intercept_channel`` with our client
interceptor, innermost, so it sees the metadata the application's own interceptors added;
``grpc.server`` gets our server interceptor first, outermost, so its span covers the
application's interceptors too (an authentication interceptor's abort is recorded). ``grpc.aio``
channels and servers get the same through their ``interceptors=`` argument. Every interceptor
starts with the gate, so channels and servers made while instrumented keep working after
``uninstrument()``, without spans.

A client span ends when the call completes (``add_done_callback`` of the call grpc returns,
which covers blocking calls, ``with_call``, ``future`` and response streams alike); the call
object reaches the application unchanged. A server span is current while the handler runs,
attached and detached in the same frame, around each step of a response stream too. The
conventions (names, attributes, the client and server status rules, and why the pre-release
``rpc.*`` set) are in ``_rpc``.

Our own OTLP/gRPC exporter makes its channel and exports under ``suppress_instrumentation()``,
where the gate is off: its channel is grpc's own and its calls make no span.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

import grpc

from telemetry_run._version import __version__
from telemetry_run.instrumentors import _rpc
from telemetry_run.instrumentors.base import Instrumentor, guard
from telemetry_run.sdk.context import attach, detach
from telemetry_run.sdk.propagation import HeaderListGetter, HeaderListSetter, extract, inject
from telemetry_run.sdk.trace.api import SpanKind
from telemetry_run.sdk.trace.current import set_span_in_context

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.context import Context
    from telemetry_run.sdk.trace.api import Span, Tracer, TracerProvider

__all__ = ["GrpcInstrumentor"]

T = TypeVar("T")

Target = tuple[str, int | None]  # server.address and server.port, from the channel target

_getter: Final = HeaderListGetter()
_pairs: Final = HeaderListSetter(as_bytes=False)

# Where each kind of handler keeps its behavior, and the factory that builds one.
_HANDLER_KINDS: Final[dict[tuple[bool, bool], tuple[str, Callable[..., Any]]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


class _MetadataSetter:
    """Adds propagation headers to a list of metadata pairs, keys lower-cased: gRPC rejects
    a call whose metadata has an upper-case key, and a propagator may use one (``X-B3-...``)."""

    __slots__ = ()

    def set(self, carrier: list[Any], key: str, value: str) -> None:
        _pairs.set(carrier, key.lower(), value)


_setter: Final = _MetadataSetter()


class GrpcInstrumentor(Instrumentor):
    """Patches ``grpc.insecure_channel``, ``grpc.secure_channel``, ``grpc.server`` and the same
    three functions of ``grpc.aio``, adding our interceptors to what they make."""

    tracer: Tracer

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        self.tracer = tracer_provider.get_tracer(__name__, __version__)
        self._server_interceptor = _ServerInterceptor(self)
        self.patcher.wrap(grpc, "insecure_channel", self._channel)
        self.patcher.wrap(grpc, "secure_channel", self._channel)
        self.patcher.wrap(grpc, "server", self._server_wrapper(self._server_interceptor))
        aio = getattr(grpc, "aio", None)
        if aio is not None:
            self._aio_server_interceptor = _AioServerInterceptor(self)
            # interceptors= is the 4th parameter of aio.insecure_channel, the 5th of
            # secure_channel and the 3rd of aio.server.
            self.patcher.wrap(aio, "insecure_channel", self._aio_channel_wrapper(3))
            self.patcher.wrap(aio, "secure_channel", self._aio_channel_wrapper(4))
            self.patcher.wrap(aio, "server", self._server_wrapper(self._aio_server_interceptor))

    # -- the patch points ---------------------------------------------------------------------

    def _channel(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        channel = wrapped(*args, **kwargs)
        intercepted = channel
        with guard("grpc: intercepting a channel"):
            target = _rpc.parse_target(args[0] if args else kwargs.get("target", ""))
            intercepted = grpc.intercept_channel(channel, _ClientInterceptor(self, target))
        return intercepted

    def _server_wrapper(
        self, interceptor: Any
    ) -> Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]:
        """``grpc.server`` / ``grpc.aio.server`` with ``interceptor`` first (outermost)."""

        def server(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            if not self.enabled():
                return wrapped(*args, **kwargs)
            call_args, call_kwargs = args, kwargs
            with guard("grpc: adding the server interceptor"):
                call_args, call_kwargs = _with_interceptors(
                    args, kwargs, 2, [interceptor], first=True
                )
            return wrapped(*call_args, **call_kwargs)

        return server

    def _aio_channel_wrapper(
        self, position: int
    ) -> Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]:
        def aio_channel(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            if not self.enabled():
                return wrapped(*args, **kwargs)
            call_args, call_kwargs = args, kwargs
            with guard("grpc.aio: adding the client interceptors"):
                target = _rpc.parse_target(args[0] if args else kwargs.get("target", ""))
                ours = [kind(self, target) for kind in _AIO_CLIENT_INTERCEPTORS]
                call_args, call_kwargs = _with_interceptors(
                    args, kwargs, position, ours, first=False
                )
            return wrapped(*call_args, **call_kwargs)

        return aio_channel

    # -- the client side ----------------------------------------------------------------------

    def _start_client(self, details: Any, target: Target) -> tuple[Span, list[Any]]:
        """The CLIENT span of a call, and a copy of its metadata carrying the span's context."""
        method = details.method
        span = self.tracer.start_span(
            _rpc.span_name(method),
            kind=SpanKind.CLIENT,
            attributes=_rpc.client_attributes(method, *target),
        )
        metadata = getattr(details, "metadata", None)
        carrier = list(metadata) if metadata else []  # a copy: the caller's is never changed
        inject(carrier, set_span_in_context(span), _setter)
        return span, carrier

    # -- the server side ----------------------------------------------------------------------

    def _traced_handler(self, handler: Any, details: Any) -> Any:
        """``handler`` with its behavior traced; the handler itself when it cannot be."""
        response_streaming = bool(handler.response_streaming)
        attribute, factory = _HANDLER_KINDS[(bool(handler.request_streaming), response_streaming)]
        behavior = getattr(handler, attribute)
        # An experimental non-blocking behavior takes a third argument we would not pass on.
        if behavior is None or getattr(behavior, "experimental_non_blocking", False):
            return handler
        traced = _traced_behavior(self.tracer, behavior, details, response_streaming)
        replace = getattr(handler, "_replace", None)
        if replace is not None:  # grpc's own handler type: everything else stays as it was
            return replace(**{attribute: traced})
        return factory(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _with_interceptors(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    position: int,
    ours: list[Any],
    *,
    first: bool,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments with ``ours`` added to the application's interceptors (kept as given).

    An interceptors argument that is no iterable is left for grpc to reject, as without us.
    """
    given = args[position] if len(args) > position else kwargs.get("interceptors")
    if given is None:
        theirs: list[Any] = []
    elif isinstance(given, Iterable) and not isinstance(given, str | bytes):
        theirs = list(given)
    else:
        return args, kwargs
    merged = [*ours, *theirs] if first else [*theirs, *ours]
    if len(args) > position:
        return (*args[:position], merged, *args[position + 1 :]), kwargs
    return args, {**kwargs, "interceptors": merged}


# -- the sync client --------------------------------------------------------------------------


class _ClientCallDetails(
    collections.namedtuple(  # as grpc builds its own details type
        "_ClientCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]  # grpc is untyped
):
    """The call's details with our copy of the metadata."""

    __slots__ = ()


class _ClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]  # grpc is untyped
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """One per channel: knows the channel's target, for ``server.address``/``server.port``."""

    def __init__(self, instrumentor: GrpcInstrumentor, target: Target) -> None:
        self._instrumentor = instrumentor
        self._target = target

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return self._intercept(continuation, client_call_details, request)

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return self._intercept(continuation, client_call_details, request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._intercept(continuation, client_call_details, request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._intercept(continuation, client_call_details, request_iterator)

    def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        instrumentor = self._instrumentor
        if not instrumentor.enabled():
            return continuation(details, request)
        span: Span | None = None
        call_details = details
        with guard("grpc client: call start"):
            span, metadata = instrumentor._start_client(details, self._target)
            call_details = _ClientCallDetails(
                details.method,
                getattr(details, "timeout", None),
                metadata,
                getattr(details, "credentials", None),
                getattr(details, "wait_for_ready", None),
                getattr(details, "compression", None),
            )
        if span is None:
            return continuation(details, request)
        try:
            call = continuation(call_details, request)
        except BaseException as exc:
            with guard("grpc client: call failed"):
                _rpc.client_exception(span, exc)
                span.end()
            raise
        _end_when_done(span, call, _client_done)
        return call


def _end_when_done(span: Span, call: Any, done: Callable[[Span, Any], None]) -> None:
    """End ``span`` when ``call`` completes (at once if it is complete, or cannot tell us)."""
    scheduled = False
    with guard("grpc client: waiting for the end of the call"):
        call.add_done_callback(functools.partial(done, span))
        scheduled = True
    if not scheduled:
        with guard("grpc client: call end"):
            span.end()


@guard("grpc client: call end")
def _client_done(span: Span, call: Any) -> None:
    """The call completed (on a grpc thread, or at once for a blocking call)."""
    try:
        code = call.code()
        failure = _failure(call) if _rpc.code_value(code) == _INTERNAL else None
        if failure is not None:  # raised in grpc's own code: no status came from the server
            _rpc.client_exception(span, failure, code)
        else:
            _rpc.client_end(span, code, call.details())
    finally:
        span.end()


_INTERNAL: Final = 13


def _failure(call: Any) -> BaseException | None:
    """The exception grpc wrapped as an INTERNAL outcome (serialization, a closed channel)."""
    try:
        exc = call.exception()
    except Exception:  # noqa: BLE001  # a cancelled future raises: then it is no failure
        return None
    if isinstance(exc, BaseException) and not isinstance(exc, grpc.RpcError):
        return exc
    return None


# -- the aio client ---------------------------------------------------------------------------


class _AioClientInterceptor:
    """What the four aio client interceptors share (grpc.aio files each kind in one list)."""

    def __init__(self, instrumentor: GrpcInstrumentor, target: Target) -> None:
        self._instrumentor = instrumentor
        self._target = target

    async def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        instrumentor = self._instrumentor
        if not instrumentor.enabled():
            return await continuation(details, request)
        span: Span | None = None
        call_details = details
        with guard("grpc.aio client: call start"):
            span, metadata = instrumentor._start_client(details, self._target)
            call_details = grpc.aio.ClientCallDetails(
                details.method,
                getattr(details, "timeout", None),
                grpc.aio.Metadata(*metadata),
                getattr(details, "credentials", None),
                getattr(details, "wait_for_ready", None),
            )
        if span is None:
            return await continuation(details, request)
        try:
            call = await continuation(call_details, request)
        except BaseException as exc:
            with guard("grpc.aio client: call failed"):
                _rpc.client_exception(span, exc)
                span.end()
            raise
        _end_when_done(span, call, _aio_client_done)
        return call


class _AioUnaryUnary(_AioClientInterceptor, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await self._intercept(continuation, client_call_details, request)


class _AioUnaryStream(_AioClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await self._intercept(continuation, client_call_details, request)


class _AioStreamUnary(_AioClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._intercept(continuation, client_call_details, request_iterator)


class _AioStreamStream(_AioClientInterceptor, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._intercept(continuation, client_call_details, request_iterator)


_AIO_CLIENT_INTERCEPTORS: Final = (
    _AioUnaryUnary,
    _AioUnaryStream,
    _AioStreamUnary,
    _AioStreamStream,
)


@guard("grpc.aio client: call end")
def _aio_client_done(span: Span, call: Any) -> None:
    """The aio call completed: its status is there, though behind coroutines."""
    try:
        _rpc.client_end(span, _finished(call.code()), _finished(call.details()))
    finally:
        span.end()


def _finished(coroutine: Coroutine[Any, Any, T]) -> T:
    """The value of a coroutine that completes without waiting: a finished call's status.

    A done callback cannot await, and scheduling a task for it could outlive the event loop.
    """
    try:
        coroutine.send(None)
    except StopIteration as stop:
        value: T = stop.value
        return value
    coroutine.close()
    raise RuntimeError("the status of a completed call was not available")


# -- the server -------------------------------------------------------------------------------


class _ServerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Traces the handler grpc found for a call (none: UNIMPLEMENTED, and no span)."""

    def __init__(self, instrumentor: GrpcInstrumentor) -> None:
        self._instrumentor = instrumentor

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not self._instrumentor.enabled():
            return handler
        traced = None
        with guard("grpc server: tracing a handler"):
            traced = self._instrumentor._traced_handler(handler, handler_call_details)
        return handler if traced is None else traced


class _AioServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """The same for a grpc.aio server."""

    def __init__(self, instrumentor: GrpcInstrumentor) -> None:
        self._instrumentor = instrumentor

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or not self._instrumentor.enabled():
            return handler
        traced = None
        with guard("grpc.aio server: tracing a handler"):
            traced = self._instrumentor._traced_handler(handler, handler_call_details)
        return handler if traced is None else traced


class _ServerCall:
    """The SERVER span of one call and the context that holds it; ends once, whoever ends it
    (the handler's thread, or grpc's when the client cancels a stream)."""

    __slots__ = ("_ended", "_lock", "context", "span")

    def __init__(self, span: Span, context: Context) -> None:
        self.span = span
        self.context = context
        self._lock = threading.Lock()
        self._ended = False

    @classmethod
    def start(cls, tracer: Tracer, details: Any, servicer_context: Any) -> _ServerCall:
        metadata = getattr(details, "invocation_metadata", None)
        parent = extract(metadata or (), None, _getter)
        method = details.method
        span = tracer.start_span(
            _rpc.span_name(method),
            context=parent,
            kind=SpanKind.SERVER,
            attributes=_rpc.server_attributes(method, servicer_context.peer()),
        )
        return cls(span, set_span_in_context(span, parent))

    def _claim(self) -> bool:
        with self._lock:
            if self._ended:
                return False
            self._ended = True
            return True

    def completed(self, servicer_context: Any) -> None:
        """The handler returned (or its stream ended): the code it set, or OK."""
        if not self._claim():
            return
        try:
            code = _code(servicer_context)
            if code is None and _cut_short(servicer_context):
                code = _cut_short_code(servicer_context)
            _rpc.server_end(self.span, code, _details(servicer_context))
        finally:
            self.span.end()

    def failed(self, servicer_context: Any, exc: BaseException) -> None:
        """The handler raised: an abort ends with its code, anything else is UNKNOWN."""
        if not self._claim():
            return
        span = self.span
        try:
            if _is_abort(servicer_context, exc):
                code = _code(servicer_context)
                value = _rpc.UNKNOWN if code is None else _rpc.code_value(code)
                # abort() raises to unwind the handler: only a server fault is worth its event.
                if value is not None and _rpc.is_error(value, server=True):
                    span.record_exception(exc, escaped=True)
                _rpc.server_end(span, value, _details(servicer_context))
            elif isinstance(exc, asyncio.CancelledError | GeneratorExit) or (
                isinstance(exc, grpc.RpcError) and _cut_short(servicer_context)
            ):
                _rpc.server_end(span, _cut_short_code(servicer_context))
            else:
                _rpc.server_exception(span, exc)
        finally:
            span.end()

    def terminated(self, servicer_context: Any) -> None:
        """The call ended before its response stream did: cancelled, or past its deadline."""
        if not self._claim():
            return
        try:
            _rpc.server_end(self.span, _cut_short_code(servicer_context))
        finally:
            self.span.end()


def _code(servicer_context: Any) -> Any:
    """The code the handler set (``set_code``, ``abort``), None if none (grpcio >= 1.38)."""
    code = getattr(servicer_context, "code", None)
    return code() if callable(code) else None


def _details(servicer_context: Any) -> str | None:
    get = getattr(servicer_context, "details", None)
    details = get() if callable(get) else None
    if isinstance(details, bytes):  # the sync server keeps them encoded
        details = details.decode("utf-8", "replace")
    return details if isinstance(details, str) and details else None


def _cut_short(servicer_context: Any) -> bool:
    """True when the call is over although the handler did not end it (cancel, deadline)."""
    is_active = getattr(servicer_context, "is_active", None)
    if callable(is_active):
        return not is_active()
    cancelled = getattr(servicer_context, "cancelled", None)  # grpc.aio
    return bool(cancelled()) if callable(cancelled) else False


def _cut_short_code(servicer_context: Any) -> int:
    remaining = servicer_context.time_remaining()
    if remaining is not None and remaining <= 0:
        return _rpc.DEADLINE_EXCEEDED
    return _rpc.CANCELLED


def _is_abort(servicer_context: Any, exc: BaseException) -> bool:
    """``context.abort()`` raised ``exc`` (a bare Exception in the sync server)."""
    if isinstance(exc, grpc.aio.AbortError):
        return True
    aborted = getattr(getattr(servicer_context, "_state", None), "aborted", None)
    if isinstance(aborted, bool):  # the sync server's own record of it
        return aborted
    return type(exc) is Exception and not exc.args and _code(servicer_context) is not None


def _on_termination(call: _ServerCall, servicer_context: Any) -> None:
    """Have grpc end the span if the call ends while its response stream is not drained."""
    add_done_callback = getattr(servicer_context, "add_done_callback", None)
    if callable(add_done_callback):  # grpc.aio: the callback gets the context
        add_done_callback(lambda _: _terminated(call, servicer_context))
    elif servicer_context.add_callback(lambda: _terminated(call, servicer_context)) is False:
        call.terminated(servicer_context)  # over already: grpc will not call back


@guard("grpc server: call cut short")
def _terminated(call: _ServerCall, servicer_context: Any) -> None:
    call.terminated(servicer_context)


def _traced_behavior(
    tracer: Tracer, behavior: Callable[..., Any], details: Any, response_streaming: bool
) -> Callable[..., Any]:
    """A behavior of the same kind (function, coroutine function, async generator function:
    grpc.aio runs each differently) that runs ``behavior`` inside the call's SERVER span."""
    if inspect.isasyncgenfunction(behavior):
        return _aio_stream_behavior(tracer, behavior, details)
    if inspect.iscoroutinefunction(behavior):
        return _aio_behavior(tracer, behavior, details)
    return _sync_behavior(tracer, behavior, details, response_streaming)


def _start_server(tracer: Tracer, details: Any, servicer_context: Any) -> _ServerCall | None:
    call = None
    with guard("grpc server: call start"):
        call = _ServerCall.start(tracer, details, servicer_context)
    return call


def _sync_behavior(
    tracer: Tracer, behavior: Callable[..., Any], details: Any, response_streaming: bool
) -> Callable[..., Any]:
    def traced(request: Any, context: Any) -> Any:
        call = _start_server(tracer, details, context)
        if call is None:
            return behavior(request, context)
        token = attach(call.context)
        try:
            result = behavior(request, context)
        except BaseException as exc:
            with guard("grpc server: handler failed"):
                call.failed(context, exc)
            raise
        finally:
            detach(token)
        if not response_streaming:
            with guard("grpc server: call end"):
                call.completed(context)
            return result
        with guard("grpc server: watching for cancellation"):
            _on_termination(call, context)
        return _traced_responses(call, context, result)

    return traced


def _traced_responses(call: _ServerCall, context: Any, responses: Any) -> Iterator[Any]:
    """The handler's responses, each produced inside the span's context (attached and detached
    around each step, so nothing is left attached while grpc holds the stream); the span ends
    with the stream."""
    while True:
        token = attach(call.context)
        try:
            response = next(responses)  # as grpc calls it: a non-iterator fails as it would
        except StopIteration:
            with guard("grpc server: stream end"):
                call.completed(context)
            return
        except BaseException as exc:
            with guard("grpc server: stream failed"):
                call.failed(context, exc)
            raise
        finally:
            detach(token)
        try:
            yield response
        except GeneratorExit:  # grpc dropped the stream (the call was cancelled)
            with guard("grpc server: stream closed"):
                call.terminated(context)
            raise


def _aio_behavior(tracer: Tracer, behavior: Callable[..., Any], details: Any) -> Callable[..., Any]:
    async def traced(request: Any, context: Any) -> Any:
        call = _start_server(tracer, details, context)
        if call is None:
            return await behavior(request, context)
        token = attach(call.context)
        try:
            response = await behavior(request, context)
        except BaseException as exc:  # CancelledError too: the client went away
            with guard("grpc.aio server: handler failed"):
                call.failed(context, exc)
            raise
        finally:
            detach(token)
        with guard("grpc.aio server: call end"):
            call.completed(context)
        return response

    return traced


def _aio_stream_behavior(
    tracer: Tracer, behavior: Callable[..., Any], details: Any
) -> Callable[..., Any]:
    async def traced(request: Any, context: Any) -> AsyncIterator[Any]:
        call = _start_server(tracer, details, context)
        if call is None:
            async for response in behavior(request, context):
                yield response
            return
        try:
            responses = behavior(request, context)  # an async generator: nothing runs yet
        except BaseException as exc:
            with guard("grpc.aio server: handler failed"):
                call.failed(context, exc)
            raise
        with guard("grpc.aio server: watching for cancellation"):
            _on_termination(call, context)
        while True:
            token = attach(call.context)
            try:
                response = await responses.__anext__()
            except StopAsyncIteration:
                with guard("grpc.aio server: stream end"):
                    call.completed(context)
                return
            except BaseException as exc:
                with guard("grpc.aio server: stream failed"):
                    call.failed(context, exc)
                raise
            finally:
                detach(token)
            try:
                yield response
            except GeneratorExit:  # grpc stopped iterating: the call was cancelled
                with guard("grpc.aio server: stream closed"):
                    call.terminated(context)
                raise

    return traced
