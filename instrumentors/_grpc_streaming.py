"""A gRPC server's response streams, run inside the call's SERVER span (the sync server's;
grpc.aio's async generators take the same steps in ``_grpc_server``).

Each response is produced with the call's context attached, and detached again before it is
handed to grpc, so nothing is left attached while grpc holds the stream. The span ends with the
stream: exhausted (the code the handler set, or OK), raising, or dropped by grpc when the call
was cancelled or ran past its deadline (``on_termination`` also asks grpc to tell us when a call
ends while its stream is not drained).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from telemetry_run.instrumentors.base import guard
from telemetry_run.sdk.context import attach, detach

if TYPE_CHECKING:
    from telemetry_run.instrumentors._grpc_server import ServerCall

__all__ = ["on_termination", "responses"]


def on_termination(call: ServerCall, servicer_context: Any) -> None:
    """Have grpc end the span if the call ends while its response stream is not drained."""
    add_done_callback = getattr(servicer_context, "add_done_callback", None)
    if callable(add_done_callback):  # grpc.aio: the callback gets the context
        add_done_callback(lambda _: _terminated(call, servicer_context))
    elif servicer_context.add_callback(lambda: _terminated(call, servicer_context)) is False:
        call.terminated(servicer_context)  # over already: grpc will not call back


@guard("grpc server: call cut short")
def _terminated(call: ServerCall, servicer_context: Any) -> None:
    call.terminated(servicer_context)


def responses(call: ServerCall, context: Any, stream: Any) -> Iterator[Any]:
    """The handler's responses, each produced inside the span's context; the span ends with
    the stream."""
    while True:
        token = attach(call.context)
        try:
            response = next(stream)  # as grpc calls it: a non-iterator fails as it would
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
