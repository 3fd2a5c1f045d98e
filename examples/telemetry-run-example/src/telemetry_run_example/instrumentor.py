"""The ``tinyqueue`` instrumentor: ``Queue.put`` and ``Queue.get`` as messaging spans.

``put`` becomes a PRODUCER span ``tinyqueue put``, current while the message is stored, and the
W3C trace context (``traceparent``, ``tracestate``, ``baggage``: whatever ``OTEL_PROPAGATORS``
configures) is injected into the message's headers. ``get`` becomes a CONSUMER span
``tinyqueue get`` whose parent is the context extracted from the message, so the consumer
continues the producer's trace even across threads or processes.

Imported only after the application imported ``tinyqueue`` (``InstrumentorSpec.load``). Every
wrapper starts with the gate, and everything we do runs inside ``guard``, with the application's
call outside it: the return value and any exception of ``put``/``get`` reach the application
untouched, and a bug of ours costs a span, never the call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.context import attach, detach, get_current
from telemetry_run.plugin import Instrumentor, guard
from telemetry_run.propagate import extract, inject
from telemetry_run.trace import SpanKind, Status, StatusCode, set_span_in_context

from telemetry_run_example import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.context import Context
    from telemetry_run.plugin import Config
    from telemetry_run.sdk.context import Token
    from telemetry_run.trace import Span, Tracer, TracerProvider

    import tinyqueue

__all__ = ["TinyQueueInstrumentor"]

SYSTEM: Final = "tinyqueue"


def _attributes(queue: tinyqueue.Queue, operation: str) -> dict[str, str]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": str(queue.name),
        "messaging.operation.type": operation,
    }


class TinyQueueInstrumentor(Instrumentor):
    """Traces ``tinyqueue.Queue.put`` (PRODUCER) and ``tinyqueue.Queue.get`` (CONSUMER)."""

    tracer: Tracer

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import tinyqueue  # already imported by the application: this only looks it up

        self.tracer = tracer_provider.get_tracer(__name__, __version__)
        self.patcher.wrap(tinyqueue, "Queue.put", self._put)
        self.patcher.wrap(tinyqueue, "Queue.get", self._get)

    def _put(
        self,
        wrapped: Callable[..., Any],
        instance: tinyqueue.Queue,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        span: Span | None = None
        token: Token | None = None
        call_kwargs = kwargs
        with guard("tinyqueue put: before the call"):
            span = self.tracer.start_span(
                "tinyqueue put", kind=SpanKind.PRODUCER, attributes=_attributes(instance, "send")
            )
            context: Context = set_span_in_context(span)
            headers = kwargs.get("headers")
            if headers is None or isinstance(headers, Mapping):  # else tinyqueue will complain
                carrier = dict(headers or {})  # a copy: the caller's mapping is never changed
                inject(carrier, context)
                call_kwargs = {**kwargs, "headers": carrier}
            token = attach(context)
        try:
            message = wrapped(*args, **call_kwargs)
        except BaseException as exc:
            with guard("tinyqueue put: after an exception"):
                self._end(span, token, exc)
            raise
        with guard("tinyqueue put: after the call"):
            if span is not None:
                span.set_attribute("messaging.message.id", str(message.id))
        with guard("tinyqueue put: ending the span"):  # apart: it must run even if the above fails
            self._end(span, token, None)
        return message

    def _get(
        self,
        wrapped: Callable[..., Any],
        instance: tinyqueue.Queue,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        start = time.time_ns()
        # No message (Empty) means nothing was consumed: no span, and the exception passes as is.
        message = wrapped(*args, **kwargs)
        with guard("tinyqueue get"):
            # The producer's context when the message carries one, else the current context.
            parent = extract(message.headers, get_current())
            attributes = _attributes(instance, "receive")
            attributes["messaging.message.id"] = str(message.id)
            self.tracer.start_span(
                "tinyqueue get",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes=attributes,
                start_time=start,
            ).end()
        return message

    @staticmethod
    def _end(span: Span | None, token: Token | None, exc: BaseException | None) -> None:
        if token is not None:
            detach(token)
        if span is None:
            return
        if exc is not None:
            span.record_exception(exc, escaped=True)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()
