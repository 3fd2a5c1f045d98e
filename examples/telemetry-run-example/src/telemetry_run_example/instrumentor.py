"""The ``tinyqueue`` instrumentor: ``Queue.put`` and ``Queue.get`` as messaging spans.

``put`` becomes a PRODUCER span ``tinyqueue put``, current while the message is stored, and the
W3C trace context (``traceparent``, ``tracestate``, ``baggage``: whatever ``OTEL_PROPAGATORS``
configures) is injected into the message's headers. ``get`` becomes a CONSUMER span
``tinyqueue get`` whose parent is the context extracted from the message, so the consumer
continues the producer's trace even across threads or processes.

Written as telemetry-run's own instrumentors are, on its toolkit: ``client_call`` and
``server_call`` own the span, the propagation, the exception and status, and guard every step of
theirs; what remains here is the library's part (what to patch, the attributes, the carrier).
The application's return value and any exception of ``put``/``get`` reach it untouched, and a bug
of ours costs a span, never the call. Imported only after the application imported
``tinyqueue`` (``InstrumentorSpec.load``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.instrumentors.toolkit import client_call, server_call
from telemetry_run.plugin import Instrumentor, guard
from telemetry_run.trace import SpanKind

from telemetry_run_example import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.instrumentors.toolkit import CallSite
    from telemetry_run.plugin import Config
    from telemetry_run.trace import Tracer, TracerProvider

    import tinyqueue

__all__ = ["TinyQueueInstrumentor"]

SYSTEM: Final = "tinyqueue"


def _attributes(queue: tinyqueue.Queue, operation: str) -> dict[str, str]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": str(queue.name),
        "messaging.operation.type": operation,
    }


def _put_attributes(queue: tinyqueue.Queue, headers: dict[str, str]) -> dict[str, str]:
    return _attributes(queue, "send")


def _get_attributes(queue: tinyqueue.Queue, message: tinyqueue.Message) -> dict[str, str]:
    attributes = _attributes(queue, "receive")
    attributes["messaging.message.id"] = str(message.id)
    return attributes


class TinyQueueInstrumentor(Instrumentor):
    """Traces ``tinyqueue.Queue.put`` (PRODUCER) and ``tinyqueue.Queue.get`` (CONSUMER)."""

    tracer: Tracer
    put_site: CallSite
    get_site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import tinyqueue  # already imported by the application: this only looks it up

        self.tracer = tracer_provider.get_tracer(__name__, __version__)
        self.put_site = client_call(
            self.tracer,
            "tinyqueue put",
            kind=SpanKind.PRODUCER,
            attributes=_put_attributes,
            span_name="tinyqueue put",
            carrier=lambda queue, headers: headers,  # the context goes into the message's
            enabled=self.enabled,
            layer=None,  # every put is one message: no outer call to defer to
        )
        self.get_site = server_call(
            self.tracer,
            "tinyqueue get",
            kind=SpanKind.CONSUMER,
            attributes=_get_attributes,
            span_name="tinyqueue get",
            carrier=lambda queue, message: message.headers,  # the producer's context
            enabled=self.enabled,
        )
        self.patcher.wrap(tinyqueue, "Queue.put", self._put)
        self.patcher.wrap(tinyqueue, "Queue.get", self._get)

    def _put(
        self,
        wrapped: Callable[..., Any],
        instance: tinyqueue.Queue,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        headers = kwargs.get("headers")
        if not self.enabled() or not (headers is None or isinstance(headers, Mapping)):
            return wrapped(*args, **kwargs)  # tinyqueue complains about headers, as without us
        carrier = dict(headers or {})  # a copy: the caller's mapping is never changed
        with self.put_site.call(instance, carrier) as call:
            message = wrapped(*args, **{**kwargs, "headers": carrier})
            with guard("tinyqueue put: after the call"):
                call.span.set_attribute("messaging.message.id", str(message.id))
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
        # Traced once it returned, from when it started waiting; its context is not kept.
        with self.get_site.call(instance, message, start_time=start):
            pass
        return message
