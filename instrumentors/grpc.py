"""gRPC: a CLIENT span for every call and a SERVER span for every handled call, linked through
the trace context carried in the call's metadata.

Interceptors are grpc's supported hook, and they are fixed when a channel or server is made, so
the patch points are the functions that make them: ``grpc.insecure_channel`` and
``grpc.secure_channel`` return the channel wrapped by ``grpc.intercept_channel`` with our client
interceptor, innermost, so it sees the metadata the application's own interceptors added;
``grpc.server`` gets our server interceptor first, outermost, so its span covers the
application's interceptors too. ``grpc.aio`` channels and servers get the same through their
``interceptors=`` argument. Every interceptor starts with the gate, so channels and servers made
while instrumented keep working after ``uninstrument()``, without spans.

By concern: ``_grpc_client`` (the CLIENT span, ended when the call completes), ``_grpc_server``
(the SERVER span around the handler's behavior), ``_grpc_streaming`` (response streams),
``_grpc_metadata`` (the metadata as the context's carrier); the spans are made by the toolkit's
``client_call``/``server_call``, the conventions (names, attributes, status rules) are ``_rpc``.

Our own OTLP/gRPC exporter makes its channel and exports under ``suppress_instrumentation()``,
where the gate is off: its channel is grpc's own and its calls make no span.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc

from telemetry_run._version import __version__
from telemetry_run.instrumentors import _rpc
from telemetry_run.instrumentors._grpc_client import (
    AIO_CLIENT_INTERCEPTORS,
    ClientInterceptor,
    client_site,
)
from telemetry_run.instrumentors._grpc_server import (
    AioServerInterceptor,
    ServerInterceptor,
    server_site,
)
from telemetry_run.instrumentors.base import Instrumentor, WrapperFunction, guard

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["GrpcInstrumentor"]


class GrpcInstrumentor(Instrumentor):
    """Patches ``grpc.insecure_channel``, ``grpc.secure_channel``, ``grpc.server`` and the same
    three functions of ``grpc.aio``, adding our interceptors to what they make."""

    client: CallSite
    aio_client: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.client = client_site(tracer, "grpc client", self.enabled)
        self.aio_client = client_site(tracer, "grpc.aio client", self.enabled)
        server = server_site(tracer, self.enabled)
        self.patcher.wrap(grpc, "insecure_channel", self._channel)
        self.patcher.wrap(grpc, "secure_channel", self._channel)
        self.patcher.wrap(grpc, "server", self._server_wrapper(ServerInterceptor(server)))
        aio = getattr(grpc, "aio", None)
        if aio is not None:
            # interceptors= is the 4th parameter of aio.insecure_channel, the 5th of
            # secure_channel and the 3rd of aio.server.
            self.patcher.wrap(aio, "insecure_channel", self._aio_channel_wrapper(3))
            self.patcher.wrap(aio, "secure_channel", self._aio_channel_wrapper(4))
            self.patcher.wrap(aio, "server", self._server_wrapper(AioServerInterceptor(server)))

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
            intercepted = grpc.intercept_channel(channel, ClientInterceptor(self.client, target))
        return intercepted

    def _adding(
        self,
        position: int,
        ours: Callable[[tuple[Any, ...], dict[str, Any]], list[Any]],
        where: str,
    ) -> WrapperFunction:
        """A wrapper of a function that makes a server or an aio channel: ``ours(args, kwargs)``
        added to its ``interceptors`` argument (at ``position``), first for a server (outermost),
        last for a channel (innermost)."""
        first = position == 2  # grpc.server and grpc.aio.server: interceptors= is the 3rd

        def adding(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            if not self.enabled():
                return wrapped(*args, **kwargs)
            call_args, call_kwargs = args, kwargs
            with guard(where):
                call_args, call_kwargs = _with_interceptors(
                    args, kwargs, position, ours(args, kwargs), first=first
                )
            return wrapped(*call_args, **call_kwargs)

        return adding

    def _aio_channel_wrapper(self, position: int) -> WrapperFunction:
        def ours(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
            target = _rpc.parse_target(args[0] if args else kwargs.get("target", ""))
            return [kind(self.aio_client, target) for kind in AIO_CLIENT_INTERCEPTORS]

        return self._adding(position, ours, "grpc.aio: adding the client interceptors")

    def _server_wrapper(self, interceptor: Any) -> WrapperFunction:
        return self._adding(2, lambda *_: [interceptor], "grpc: adding the server interceptor")


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
