"""A tiny gRPC service for the instrumentor's tests: generic handlers on raw bytes, no codegen.

``demo.v1.Echo`` has one method per kind (``Unary``, ``ServerStream``, ``ClientStream``,
``Bidi``). A request is a command the handler obeys, so one servicer covers every case:
``abort:NOT_FOUND``, ``set_code:INVALID_ARGUMENT``, ``raise``, ``span`` (a manual span inside
the handler), ``call:<target>`` (an outgoing call from the handler), ``wait`` (until the call
is cancelled or past its deadline, bounded), ``endless`` (stream until cancelled, bounded).
Everything listens on 127.0.0.1, port 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from telemetry_run.sdk.trace.current import get_current_span
from telemetry_run.sdk.trace.globals import get_tracer

SERVICE = "demo.v1.Echo"
METHODS = {
    "unary_unary": f"/{SERVICE}/Unary",
    "unary_stream": f"/{SERVICE}/ServerStream",
    "stream_unary": f"/{SERVICE}/ClientStream",
    "stream_stream": f"/{SERVICE}/Bidi",
}
KINDS = tuple(METHODS)
WAIT = 10.0  # the bound on every wait a handler makes


@dataclass
class Seen:
    """What the handlers observed: the metadata and the current span id of each call."""

    metadata: list[dict[str, str]] = field(default_factory=list)
    current_span_ids: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, context: Any) -> None:
        with self.lock:
            self.metadata.append(
                {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            )
            self.current_span_ids.append(get_current_span().get_span_context().span_id)


def _code(name: bytes) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, name.decode())


def _obey(command: bytes, context: Any, seen: Seen) -> bytes:
    """Carry out one command inside a handler; the reply for it."""
    seen.note(context)
    verb, _, arg = command.partition(b":")
    if verb == b"abort":
        context.abort(_code(arg), f"aborted with {arg.decode()}")
    if verb == b"set_code":
        context.set_code(_code(arg))
        context.set_details(f"set {arg.decode()}")
        return b"answer despite the code"
    if verb == b"raise":
        raise ValueError("the handler failed")
    if verb == b"span":
        with get_tracer("grpc_support").start_as_current_span("inside the handler"):
            pass
    if verb == b"call":
        with grpc.insecure_channel(arg.decode()) as channel:
            return bytes(channel.unary_unary(METHODS["unary_unary"])(b"inner", timeout=WAIT))
    if verb == b"wait":
        done = threading.Event()
        context.add_callback(done.set)
        done.wait(WAIT)
    return command


def _unary(seen: Seen) -> Callable[[bytes, Any], bytes]:
    def unary(request: bytes, context: Any) -> bytes:
        return _obey(request, context, seen)

    return unary


def _server_stream(seen: Seen) -> Callable[[bytes, Any], Iterator[bytes]]:
    def server_stream(request: bytes, context: Any) -> Iterator[bytes]:
        if request == b"endless":
            seen.note(context)
            done = threading.Event()
            context.add_callback(done.set)
            for i in range(1000):
                yield b"item %d" % i
                if done.wait(WAIT / 1000):
                    return
            return
        first = _obey(request, context, seen)
        for i in range(3):
            with get_tracer("grpc_support").start_as_current_span(f"item {i}"):
                pass
            yield first + b" %d" % i

    return server_stream


def _client_stream(seen: Seen) -> Callable[[Iterator[bytes], Any], bytes]:
    def client_stream(requests: Iterator[bytes], context: Any) -> bytes:
        received = list(requests)
        return _obey(received[0], context, seen) + b"+%d" % (len(received) - 1)

    return client_stream


def _bidi(seen: Seen) -> Callable[[Iterator[bytes], Any], Iterator[bytes]]:
    def bidi(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        for index, request in enumerate(requests):
            yield _obey(request, context, seen) if index == 0 else request

    return bidi


def handler(seen: Seen) -> Any:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary(seen)),
            "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream(seen)),
            "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream(seen)),
            "Bidi": grpc.stream_stream_rpc_method_handler(_bidi(seen)),
        },
    )


@contextlib.contextmanager
def serve(
    seen: Seen | None = None, *, credentials: Any = None, **server_kwargs: Any
) -> Iterator[tuple[int, Any]]:
    """A started server on 127.0.0.1 (its port and the server), stopped at the end."""
    executor = futures.ThreadPoolExecutor(max_workers=8)
    server = grpc.server(executor, **server_kwargs)
    try:
        server.add_generic_rpc_handlers((handler(seen or Seen()),))
        address = "127.0.0.1:0"
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
        server.start()
        yield port, server
    finally:
        server.stop(None).wait(WAIT)
        executor.shutdown(wait=False)


def call(channel: Any, kind: str, command: bytes = b"hello", **kwargs: Any) -> list[bytes]:
    """One call of ``kind`` (the request stream repeats ``command`` after a second message)."""
    kwargs.setdefault("timeout", WAIT)
    method = getattr(channel, kind)(METHODS[kind])
    if kind == "unary_unary":
        return [method(command, **kwargs)]
    if kind == "unary_stream":
        return list(method(command, **kwargs))
    requests: Iterable[bytes] = iter([command, b"second"])
    if kind == "stream_unary":
        return [method(requests, **kwargs)]
    return list(method(requests, **kwargs))


def one_call() -> None:
    """The contract suite's exercise: a server on a free port and one unary call to it."""
    with (
        serve() as (port, _),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        assert call(channel, "unary_unary") == [b"hello"]


# -- grpc.aio ---------------------------------------------------------------------------------


def aio_handler(seen: Seen) -> Any:
    async def unary(request: bytes, context: Any) -> bytes:
        seen.note(context)
        if request.startswith(b"abort:"):
            await context.abort(_code(request[6:]), "aborted")
        if request == b"raise":
            raise ValueError("the handler failed")
        if request == b"span":
            with get_tracer("grpc_support").start_as_current_span("inside the handler"):
                pass
        if request == b"wait":  # until grpc cancels this task (deadline, cancel), bounded
            for _ in range(1000):
                await asyncio.sleep(WAIT / 1000)
        return request

    async def server_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        seen.note(context)
        if request == b"endless":
            for i in range(1000):
                yield b"item %d" % i
                await asyncio.sleep(WAIT / 1000)
            return
        for i in range(3):
            with get_tracer("grpc_support").start_as_current_span(f"item {i}"):
                await asyncio.sleep(0)
            yield request + b" %d" % i

    async def client_stream(requests: AsyncIterator[bytes], context: Any) -> bytes:
        seen.note(context)
        received = [request async for request in requests]
        return received[0] + b"+%d" % (len(received) - 1)

    async def bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        seen.note(context)
        async for request in requests:
            yield request

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        },
    )


async def aio_call(channel: Any, kind: str, command: bytes = b"hello") -> list[bytes]:
    method = getattr(channel, kind)(METHODS[kind])
    if kind == "unary_unary":
        return [await method(command, timeout=WAIT)]
    if kind == "unary_stream":
        return [response async for response in method(command, timeout=WAIT)]
    requests = [command, b"second"]
    if kind == "stream_unary":
        return [await method(iter(requests), timeout=WAIT)]
    return [response async for response in method(iter(requests), timeout=WAIT)]
