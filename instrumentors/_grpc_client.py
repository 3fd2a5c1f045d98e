"""The gRPC client side: a CLIENT span per call, made by the toolkit's ``client_call``.

Our interceptor is the innermost (it sees the metadata the application's own interceptors
added). The span ends when the call completes (``add_done_callback`` of the call grpc returns,
which covers blocking calls, ``with_call``, ``future`` and response streams alike); the call
object reaches the application unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import grpc

from telemetry_run.instrumentors import _grpc_metadata, _rpc
from telemetry_run.instrumentors.base import guard
from telemetry_run.instrumentors.toolkit import RPC_CLIENT, Call, CallSite, client_call

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.api import Tracer

__all__ = ["AIO_CLIENT_INTERCEPTORS", "ClientInterceptor", "Target", "client_site"]

T = TypeVar("T")

Target = tuple[str, int | None]  # server.address and server.port, from the channel target

_INTERNAL: Final = 13


def _attributes(details: Any, target: Target, metadata: list[Any]) -> dict[str, Any]:
    return _rpc.client_attributes(details.method, *target)


def _span_name(attributes: Mapping[str, Any], details: Any, *args: Any) -> str:
    return _rpc.span_name(details.method)


def _carrier(details: Any, target: Target, metadata: list[Any]) -> list[Any]:
    return metadata


def client_site(tracer: Tracer, name: str, enabled: Callable[[], bool]) -> CallSite:
    """``site.start(details, target, metadata)`` starts a call and injects into ``metadata``."""
    return client_call(
        tracer,
        name,
        attributes=_attributes,
        span_name=_span_name,
        carrier=_carrier,
        setter=_grpc_metadata.SETTER,
        rules=RPC_CLIENT,
        metric="rpc.client.duration",
        enabled=enabled,
        layer="grpc",
    )


def _start(
    site: CallSite, target: Target, details: Any, build: Callable[[Any, list[Any]], Any]
) -> tuple[Call | None, Any]:
    """The call and its details carrying the context; ``(None, details)`` when untraced."""
    with guard(site.where_start):
        metadata = _grpc_metadata.outgoing(details)  # a copy: the caller's is never changed
        call = site.start(details, target, metadata)
        if call is not None:
            try:
                return call, build(details, metadata)
            except BaseException:
                call.end()
                call.detach()
                raise
    return None, details


def _end_when_done(call: Call, grpc_call: Any, done: Callable[[Call, Any], None]) -> None:
    """End ``call`` when ``grpc_call`` completes (at once if it cannot tell us)."""
    scheduled = False
    with guard("grpc client: waiting for the end of the call"):
        grpc_call.add_done_callback(functools.partial(done, call))
        scheduled = True
    if not scheduled:
        with guard("grpc client: call end"):
            call.end()


def _failed(call: Call, exc: BaseException) -> None:
    with guard("grpc client: call failed"):
        call.record_exception(exc)
        call.end()


# -- the sync client --------------------------------------------------------------------------


class ClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]  # grpc is untyped
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """One per channel: knows the channel's target, for ``server.address``/``server.port``."""

    def __init__(self, site: CallSite, target: Target) -> None:
        self._site = site
        self._target = target

    def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        if not self._site.enabled():
            return continuation(details, request)
        call, call_details = _start(self._site, self._target, details, _grpc_metadata.sync_details)
        if call is None:
            return continuation(details, request)
        try:
            grpc_call = continuation(call_details, request)
        except BaseException as exc:
            _failed(call, exc)
            raise
        finally:
            call.detach()
        _end_when_done(call, grpc_call, _client_done)
        return grpc_call

    # grpc calls each with (continuation, client_call_details, request or request_iterator).
    intercept_unary_unary = intercept_unary_stream = _intercept
    intercept_stream_unary = intercept_stream_stream = _intercept


@guard("grpc client: call end")
def _client_done(call: Call, grpc_call: Any) -> None:
    """The call completed (on a grpc thread, or at once for a blocking call)."""
    try:
        code = grpc_call.code()
        failure = _failure(grpc_call) if _rpc.code_value(code) == _INTERNAL else None
        if failure is not None:  # raised in grpc's own code: no status came from the server
            _rpc.client_exception(call.span, failure, code)
            call.exception, call.status_code = failure, code  # for the duration metric
        else:
            call.set_status_code(code, grpc_call.details())
    finally:
        call.end()


def _failure(grpc_call: Any) -> BaseException | None:
    """The exception grpc wrapped as an INTERNAL outcome (serialization, a closed channel)."""
    try:
        exc = grpc_call.exception()
    except Exception:  # noqa: BLE001  # a cancelled future raises: then it is no failure
        return None
    if isinstance(exc, BaseException) and not isinstance(exc, grpc.RpcError):
        return exc
    return None


# -- the aio client ---------------------------------------------------------------------------


class _AioClientInterceptor:
    """What the four aio client interceptors share (grpc.aio files each kind in one list)."""

    def __init__(self, site: CallSite, target: Target) -> None:
        self._site = site
        self._target = target

    async def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        if not self._site.enabled():
            return await continuation(details, request)
        call, call_details = _start(self._site, self._target, details, _grpc_metadata.aio_details)
        if call is None:
            return await continuation(details, request)
        try:
            grpc_call = await continuation(call_details, request)
        except BaseException as exc:
            _failed(call, exc)
            raise
        finally:
            call.detach()
        _end_when_done(call, grpc_call, _aio_client_done)
        return grpc_call


def _aio_kind(kind: str) -> type[_AioClientInterceptor]:
    """The aio interceptor class of one kind (``"unary_stream"``): ``intercept_unary_stream``
    on ``grpc.aio.UnaryStreamClientInterceptor``."""
    base = getattr(
        grpc.aio, "".join(word.title() for word in kind.split("_")) + "ClientInterceptor"
    )

    async def intercept(
        self: _AioClientInterceptor, continuation: Any, details: Any, request: Any
    ) -> Any:
        return await self._intercept(continuation, details, request)

    return type(
        f"_Aio{base.__name__}", (_AioClientInterceptor, base), {f"intercept_{kind}": intercept}
    )


AIO_CLIENT_INTERCEPTORS: Final = tuple(
    _aio_kind(kind) for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
)


@guard("grpc.aio client: call end")
def _aio_client_done(call: Call, grpc_call: Any) -> None:
    """The aio call completed: its status is there, though behind coroutines."""
    try:
        call.set_status_code(_finished(grpc_call.code()), _finished(grpc_call.details()))
    finally:
        call.end()


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
