"""The gRPC server side: a SERVER span per handled call, made by the toolkit's ``server_call``.

Our interceptor is the outermost, so its span covers the application's interceptors too (an
authentication interceptor's abort is recorded). It does not run the handler: it returns the
handler grpc found with its behavior traced, of the same kind (function, coroutine function,
async generator function: grpc.aio runs each differently). The span is current while the
behavior runs, attached and detached in the same frame; a response stream is in
``_grpc_streaming``. The call ends once, whoever ends it: the handler's thread, or grpc's when
the client cancels a stream.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import grpc

from telemetry_run.instrumentors import _grpc_metadata, _grpc_streaming, _rpc
from telemetry_run.instrumentors.base import guard
from telemetry_run.instrumentors.toolkit import RPC_SERVER, Call, CallSite, server_call
from telemetry_run.sdk.context import attach, detach

if TYPE_CHECKING:
    from telemetry_run.sdk.context import Context
    from telemetry_run.sdk.trace.api import Span, Tracer

__all__ = ["AioServerInterceptor", "ServerCall", "ServerInterceptor", "server_site"]

# Where each kind of handler keeps its behavior, and the factory that builds one.
_HANDLER_KINDS: Final[dict[tuple[bool, bool], tuple[str, Callable[..., Any]]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


class ServerCall(Call):
    """The SERVER span of one call; ends once, whoever ends it."""

    __slots__ = ("_claimed", "_lock")

    def __init__(
        self, site: CallSite, span: Span, context: Context, attributes: Mapping[str, Any]
    ) -> None:
        super().__init__(site, span, context, attributes)
        self._lock = threading.Lock()
        self._claimed = False

    def _claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def completed(self, servicer_context: Any) -> None:
        """The handler returned (or its stream ended): the code it set, or OK."""
        if not self._claim():
            return
        try:
            code = _code(servicer_context)
            if code is None and _cut_short(servicer_context):
                code = _cut_short_code(servicer_context)
            self.set_status_code(code, _details(servicer_context))
        finally:
            self.end()

    def failed(self, servicer_context: Any, exc: BaseException) -> None:
        """The handler raised: an abort ends with its code, anything else is UNKNOWN."""
        if not self._claim():
            return
        try:
            if _is_abort(servicer_context, exc):
                code = _code(servicer_context)
                value = _rpc.UNKNOWN if code is None else _rpc.code_value(code)
                # abort() raises to unwind the handler: only a server fault is worth its event.
                if value is not None and _rpc.is_error(value, server=True):
                    self.span.record_exception(exc, escaped=True)
                self.set_status_code(value, _details(servicer_context))
            elif isinstance(exc, asyncio.CancelledError | GeneratorExit) or (
                isinstance(exc, grpc.RpcError) and _cut_short(servicer_context)
            ):
                self.set_status_code(_cut_short_code(servicer_context))
            else:
                self.record_exception(exc)
        finally:
            self.end()

    def terminated(self, servicer_context: Any) -> None:
        """The call ended before its response stream did: cancelled, or past its deadline."""
        if not self._claim():
            return
        try:
            self.set_status_code(_cut_short_code(servicer_context))
        finally:
            self.end()


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


# -- the site and the interceptors ------------------------------------------------------------


def _attributes(details: Any, servicer_context: Any) -> dict[str, Any]:
    return _rpc.server_attributes(details.method, servicer_context.peer())


def _span_name(attributes: Mapping[str, Any], details: Any, servicer_context: Any) -> str:
    return _rpc.span_name(details.method)


def _carrier(details: Any, servicer_context: Any) -> Any:
    return _grpc_metadata.incoming(details)


def server_site(tracer: Tracer, enabled: Callable[[], bool]) -> CallSite:
    """``site.start(details, servicer_context)`` continues the caller's trace: a ServerCall."""
    return server_call(
        tracer,
        "grpc server",
        attributes=_attributes,
        span_name=_span_name,
        carrier=_carrier,
        getter=_grpc_metadata.GETTER,
        rules=RPC_SERVER,
        metric="rpc.server.duration",
        enabled=enabled,
        call_type=ServerCall,
    )


class ServerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Traces the handler grpc found for a call (none: UNIMPLEMENTED, and no span)."""

    def __init__(self, site: CallSite) -> None:
        self._site = site

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or not self._site.enabled():
            return handler
        traced = None
        with guard("grpc server: tracing a handler"):
            traced = _traced_handler(self._site, handler, handler_call_details)
        return handler if traced is None else traced


class AioServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """The same for a grpc.aio server."""

    def __init__(self, site: CallSite) -> None:
        self._site = site

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or not self._site.enabled():
            return handler
        traced = None
        with guard("grpc.aio server: tracing a handler"):
            traced = _traced_handler(self._site, handler, handler_call_details)
        return handler if traced is None else traced


def _traced_handler(site: CallSite, handler: Any, details: Any) -> Any:
    """``handler`` with its behavior traced; the handler itself when it cannot be."""
    response_streaming = bool(handler.response_streaming)
    attribute, factory = _HANDLER_KINDS[(bool(handler.request_streaming), response_streaming)]
    behavior = getattr(handler, attribute)
    # An experimental non-blocking behavior takes a third argument we would not pass on.
    if behavior is None or getattr(behavior, "experimental_non_blocking", False):
        return handler
    traced = _traced_behavior(site, behavior, details, response_streaming)
    replace = getattr(handler, "_replace", None)
    if replace is not None:  # grpc's own handler type: everything else stays as it was
        return replace(**{attribute: traced})
    return factory(
        traced,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


# -- the behaviors ----------------------------------------------------------------------------


def _traced_behavior(
    site: CallSite, behavior: Callable[..., Any], details: Any, response_streaming: bool
) -> Callable[..., Any]:
    """A behavior of the same kind that runs ``behavior`` inside the call's SERVER span."""
    if inspect.isasyncgenfunction(behavior):
        return _aio_stream_behavior(site, behavior, details)
    if inspect.iscoroutinefunction(behavior):
        return _aio_behavior(site, behavior, details)
    return _sync_behavior(site, behavior, details, response_streaming)


def _start(site: CallSite, details: Any, servicer_context: Any) -> ServerCall | None:
    call = site.start(details, servicer_context)  # started and attached
    return call if isinstance(call, ServerCall) else None


def _sync_behavior(
    site: CallSite, behavior: Callable[..., Any], details: Any, response_streaming: bool
) -> Callable[..., Any]:
    def traced(request: Any, context: Any) -> Any:
        call = _start(site, details, context)
        if call is None:
            return behavior(request, context)
        try:
            result = behavior(request, context)
        except BaseException as exc:
            with guard("grpc server: handler failed"):
                call.failed(context, exc)
            raise
        finally:
            call.detach()
        if not response_streaming:
            with guard("grpc server: call end"):
                call.completed(context)
            return result
        with guard("grpc server: watching for cancellation"):
            _grpc_streaming.on_termination(call, context)
        return _grpc_streaming.responses(call, context, result)

    return traced


def _aio_behavior(site: CallSite, behavior: Callable[..., Any], details: Any) -> Callable[..., Any]:
    async def traced(request: Any, context: Any) -> Any:
        call = _start(site, details, context)
        if call is None:
            return await behavior(request, context)
        try:
            response = await behavior(request, context)
        except BaseException as exc:  # CancelledError too: the client went away
            with guard("grpc.aio server: handler failed"):
                call.failed(context, exc)
            raise
        finally:
            call.detach()
        with guard("grpc.aio server: call end"):
            call.completed(context)
        return response

    return traced


def _aio_stream_behavior(
    site: CallSite, behavior: Callable[..., Any], details: Any
) -> Callable[..., Any]:
    async def traced(request: Any, context: Any) -> AsyncIterator[Any]:
        call = _start(site, details, context)
        if call is None:
            async for response in behavior(request, context):
                yield response
            return
        call.detach()  # attached around each step instead: a generator must not keep it
        try:
            responses = behavior(request, context)  # an async generator: nothing runs yet
        except BaseException as exc:
            with guard("grpc.aio server: handler failed"):
                call.failed(context, exc)
            raise
        with guard("grpc.aio server: watching for cancellation"):
            _grpc_streaming.on_termination(call, context)
        while True:  # the steps of _grpc_streaming.responses, for an async generator
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
