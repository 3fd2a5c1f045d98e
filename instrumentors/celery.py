"""Celery: a PRODUCER span per task sent, a CONSUMER span per task run, in one trace.

``Celery.send_task`` is where every task leaves (``delay``, ``apply_async``, ``send_task`` by
hand; a retry too): it is one PRODUCER span, ``send <task name>``, and Celery's
``before_task_publish`` signal, fired inside it, writes the span's context into the message's
headers. In the worker, the ``task_prerun`` signal starts ``process <task name>`` (CONSUMER)
from those headers, so it is the producer span's child across the broker, and ``task_postrun``
ends it with the task's state; ``task_failure`` records the exception (an ERROR), ``task_retry``
a ``retry`` event with its reason (not an error: the retry is sent as a new message, itself a
PRODUCER span under this one). Signals run in the worker's pool processes (prefork: billiard
children, each flushing its spans when it ends; threads; solo), so every pool kind is covered.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors.base import Instrumentor, guard
from telemetry_run.instrumentors.toolkit import PLAIN, client_call, server_call
from telemetry_run.sdk.trace.api import SpanKind

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import Call, CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["CeleryInstrumentor"]

_SYSTEM: Final = "celery"


def _send_attributes(app: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    name = args[0] if args else kwargs.get("name")
    return {
        "messaging.system": _SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "celery.task.name": str(name),
    }


def _send_name(attributes: Mapping[str, Any], *args: Any, **kwargs: Any) -> str:
    return f"send {attributes['celery.task.name']}"


def _process_attributes(task: Any, task_id: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": _SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "celery.task.name": str(task.name),
        "messaging.message.id": str(task_id),
    }
    delivery = getattr(task.request, "delivery_info", None) or {}
    queue = delivery.get("routing_key")
    if queue:
        attributes["messaging.destination.name"] = str(queue)
    retries = getattr(task.request, "retries", 0)
    if retries:
        attributes["celery.task.retries"] = int(retries)
    return attributes


def _process_name(attributes: Mapping[str, Any], *args: Any) -> str:
    return f"process {attributes['celery.task.name']}"


def _request_headers(task: Any, task_id: Any) -> Any:
    """The task's request: the message's headers (our ``traceparent`` among them) as fields."""
    return vars(task.request)


class CeleryInstrumentor(Instrumentor):
    """Wraps ``Celery.send_task``; connects to the publish and run signals."""

    send_site: CallSite
    process_site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import celery.app.base
        from celery import signals

        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.send_site = client_call(
            tracer,
            "celery",
            attributes=_send_attributes,
            span_name=_send_name,
            layer="celery",  # send_task inside send_task (a canvas): one PRODUCER span
            kind=SpanKind.PRODUCER,
            rules=PLAIN,
            enabled=self.enabled,
            noun="send",
        )
        self.process_site = server_call(
            tracer,
            "celery",
            attributes=_process_attributes,
            span_name=_process_name,
            carrier=_request_headers,
            kind=SpanKind.CONSUMER,
            rules=PLAIN,
            enabled=self.enabled,
            noun="process",
        )
        # By task id and thread: a retry keeps its task's id, and under a threads pool it may
        # start before the run that sent it has ended; a run's signals all come from its thread.
        self._running: dict[tuple[str, int], Call] = {}
        self._lock = threading.Lock()
        self.patcher.wrap(celery.app.base, "Celery.send_task", self._send_task)
        self._signals: list[tuple[Any, Callable[..., None]]] = [
            (signals.before_task_publish, self._before_publish),
            (signals.task_prerun, self._prerun),
            (signals.task_failure, self._failure),
            (signals.task_retry, self._retry),
            (signals.task_postrun, self._postrun),
        ]
        for signal, receiver in self._signals:
            signal.connect(receiver, weak=False)

    def _uninstrument(self) -> None:
        for signal, receiver in getattr(self, "_signals", ()):
            signal.disconnect(receiver)
        self._signals = []

    # -- the producer ----------------------------------------------------------------------

    def _send_task(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        with self.send_site.call(instance, *args, **kwargs) as call:
            result = wrapped(*args, **kwargs)
            with guard("celery: sent"):
                task_id = getattr(result, "id", None)
                if task_id is not None and call.span.is_recording():
                    call.span.set_attribute("messaging.message.id", str(task_id))
            return result

    def _before_publish(
        self, sender: Any = None, headers: Any = None, routing_key: Any = None, **_: Any
    ) -> None:
        """Inside ``send_task``'s span: its context goes into the message's headers."""
        if not self.enabled() or not isinstance(headers, dict):
            return
        with guard("celery: before publish"):
            from telemetry_run.sdk.propagation import inject
            from telemetry_run.sdk.trace.current import get_current_span

            inject(headers)
            span = get_current_span()
            if routing_key and span.is_recording():
                span.set_attribute("messaging.destination.name", str(routing_key))

    # -- the consumer ----------------------------------------------------------------------

    def _prerun(self, task_id: Any = None, task: Any = None, **_: Any) -> None:
        if task is None or task_id is None:
            return
        call = self.process_site.start(task, task_id)
        if call is not None:
            with self._lock:
                self._running[str(task_id), threading.get_ident()] = call

    def _current(self, task_id: Any) -> Call | None:
        with self._lock:
            return self._running.get((str(task_id), threading.get_ident()))

    def _failure(self, task_id: Any = None, exception: Any = None, **_: Any) -> None:
        call = self._current(task_id)
        if call is not None and isinstance(exception, BaseException):
            with guard("celery: failure"):
                call.record_exception(exception)

    def _retry(self, request: Any = None, reason: Any = None, **_: Any) -> None:
        call = self._current(getattr(request, "id", None))
        if call is not None:
            with guard("celery: retry"):
                call.span.add_event("retry", {"celery.retry.reason": str(reason)})

    def _postrun(self, task_id: Any = None, state: Any = None, **_: Any) -> None:
        with self._lock:
            call = self._running.pop((str(task_id), threading.get_ident()), None)
        if call is None:
            return
        with guard("celery: postrun"):
            if state is not None:
                call.span.set_attribute("celery.task.state", str(state))
        call.detach()
        with guard(self.process_site.where_end):
            call.end()
