"""The tinyqueue instrumentor's spans, seen through telemetry-run's ``span_recorder`` fixture."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from telemetry_run.sdk.context import suppress_instrumentation
from telemetry_run.sdk.diagnostics import InternalError
from telemetry_run.testing import SpanRecorder
from telemetry_run.trace import Span, SpanKind, StatusCode, get_current_span

import tinyqueue
from telemetry_run_example.instrumentor import TinyQueueInstrumentor


def test_put_and_get_make_producer_and_consumer_spans(instrumented: SpanRecorder) -> None:
    queue = tinyqueue.Queue("orders")
    sent = queue.put({"order": 7})
    received = queue.get()

    producer = instrumented.one("tinyqueue put")
    consumer = instrumented.one("tinyqueue get")
    assert producer.kind is SpanKind.PRODUCER
    assert consumer.kind is SpanKind.CONSUMER
    assert dict(producer.attributes) == {
        "messaging.system": "tinyqueue",
        "messaging.destination.name": "orders",
        "messaging.operation.type": "send",
        "messaging.message.id": str(sent.id),
    }
    assert dict(consumer.attributes) == {
        "messaging.system": "tinyqueue",
        "messaging.destination.name": "orders",
        "messaging.operation.type": "receive",
        "messaging.message.id": str(sent.id),
    }
    assert producer.status.status_code is StatusCode.UNSET
    assert producer.parent is None
    # The consumer continues the producer's trace, through the message's headers.
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.parent.is_remote
    assert received is sent
    assert received.headers["traceparent"] == (
        f"00-{producer.context.trace_id:032x}-{producer.context.span_id:016x}-03"
    )


def test_the_consumer_joins_the_trace_from_another_thread(instrumented: SpanRecorder) -> None:
    queue = tinyqueue.Queue("jobs")
    with instrumented.tracer.start_as_current_span("request"):
        queue.put("job")
    worker = threading.Thread(target=queue.get, kwargs={"timeout": 5.0})
    worker.start()
    worker.join(timeout=10)

    request = instrumented.one("request")
    producer = instrumented.one("tinyqueue put")
    consumer = instrumented.one("tinyqueue get")
    assert producer.parent is not None
    assert producer.parent.span_id == request.context.span_id
    assert {producer.context.trace_id, consumer.context.trace_id} == {request.context.trace_id}


def test_the_producer_span_is_current_while_the_message_is_stored(
    instrumented: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    current: list[Span] = []
    real_message = tinyqueue.Message

    def message(*args: Any, **kwargs: Any) -> tinyqueue.Message:
        current.append(get_current_span())
        return real_message(*args, **kwargs)

    monkeypatch.setattr(tinyqueue, "Message", message)
    queue = tinyqueue.Queue()
    queue.put("x")
    monkeypatch.undo()
    (span,) = current
    assert span.get_span_context() == instrumented.one("tinyqueue put").context
    assert not get_current_span().is_recording()  # and no longer current after put


def test_return_values_and_the_callers_headers_are_unchanged(instrumented: SpanRecorder) -> None:
    queue = tinyqueue.Queue()
    headers = {"content-type": "application/json"}
    message = queue.put(b"{}", headers=headers)
    assert headers == {"content-type": "application/json"}  # not written into
    assert message.body == b"{}"
    assert message.headers["content-type"] == "application/json"
    assert {"traceparent", "content-type"} <= set(message.headers)
    assert queue.get() is message
    assert len(queue) == 0


def test_an_exception_of_put_propagates_unchanged_and_marks_the_span(
    instrumented: SpanRecorder,
) -> None:
    queue = tinyqueue.Queue("small", maxsize=1)
    queue.put(1)
    with pytest.raises(tinyqueue.Full) as raised:
        queue.put(2)
    assert str(raised.value) == "queue 'small' is full (1 messages)"
    assert raised.traceback[-1].path == Path(tinyqueue.__file__)  # raised by tinyqueue, not us

    failed = instrumented.by_name("tinyqueue put")[-1]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "Full: queue 'small' is full (1 messages)"
    assert [event.name for event in failed.events] == ["exception"]
    assert "messaging.message.id" not in failed.attributes
    assert len(queue) == 1


def test_the_very_exception_object_reaches_the_caller(
    instrumented: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    boom = OSError("disk full")

    def message(*args: object, **kwargs: object) -> tinyqueue.Message:
        raise boom

    monkeypatch.setattr(tinyqueue, "Message", message)
    with pytest.raises(OSError, match="disk full") as raised:
        tinyqueue.Queue().put("x")
    assert raised.value is boom
    assert instrumented.one("tinyqueue put").status.status_code is StatusCode.ERROR


def test_bad_arguments_fail_as_they_would_without_us(instrumented: SpanRecorder) -> None:
    queue = tinyqueue.Queue()
    with pytest.raises(TypeError, match="positional argument"):
        queue.put("body", {"positional": "headers"})  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="not iterable"):
        queue.put("body", headers=42)  # type: ignore[arg-type]
    assert len(queue) == 0


def test_an_exception_of_get_propagates_unchanged_and_makes_no_span(
    instrumented: SpanRecorder,
) -> None:
    queue = tinyqueue.Queue("empty")
    with pytest.raises(tinyqueue.Empty, match="queue 'empty' is empty"):
        queue.get()
    assert instrumented.spans == ()


def test_a_message_without_trace_headers_gets_a_consumer_span_in_the_current_trace(
    instrumented: SpanRecorder,
) -> None:
    queue = tinyqueue.Queue()
    with suppress_instrumentation():
        queue.put("from an uninstrumented producer")
    with instrumented.tracer.start_as_current_span("poll"):
        message = queue.get()
    assert "traceparent" not in message.headers
    poll = instrumented.one("poll")
    consumer = instrumented.one("tinyqueue get")
    assert consumer.parent is not None
    assert consumer.parent.span_id == poll.context.span_id


def test_no_span_while_instrumentation_is_suppressed(instrumented: SpanRecorder) -> None:
    queue = tinyqueue.Queue()
    with suppress_instrumentation():
        message = queue.put("quiet")
        assert queue.get() is message
    assert instrumented.spans == ()
    assert message.headers == {}


def test_a_bug_of_ours_costs_the_span_not_the_call(
    instrumentor: TinyQueueInstrumentor,
    instrumented: SpanRecorder,
    internal_errors: list[InternalError],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("instrumentor bug")

    monkeypatch.setattr(instrumentor.tracer, "start_span", broken)
    queue = tinyqueue.Queue()
    message = queue.put("still delivered")
    assert queue.get() is message
    assert message.headers == {}
    assert [error.where for error in internal_errors] == [
        "tinyqueue put: call start",
        "tinyqueue get: call start",
    ]
    internal_errors.clear()  # expected ones: the fixture fails the test on any other
    assert instrumented.spans == ()


def test_a_failure_of_ours_after_the_call_still_ends_the_span_and_the_context(
    instrumented: SpanRecorder,
    internal_errors: list[InternalError],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Unreadable:
        """A message whose id cannot be read: our attribute code fails after put() returned."""

        def __init__(self, id: int, body: object, headers: dict[str, str]) -> None:
            self.body, self.headers = body, headers

        @property
        def id(self) -> int:
            raise RuntimeError("no id")

    monkeypatch.setattr(tinyqueue, "Message", Unreadable)
    queue = tinyqueue.Queue()
    message = queue.put("x")
    assert isinstance(message, Unreadable)
    assert not get_current_span().is_recording()  # the producer span is no longer current
    put = instrumented.one("tinyqueue put")  # ended, without the id
    assert "messaging.message.id" not in put.attributes
    assert [error.where for error in internal_errors] == ["tinyqueue put: after the call"]
    internal_errors.clear()


def test_uninstrument_restores_the_library() -> None:
    originals = dict(vars(tinyqueue.Queue))
    recorder = SpanRecorder()
    instrumentor = TinyQueueInstrumentor()
    assert instrumentor.instrument(recorder.provider)
    assert vars(tinyqueue.Queue)["put"] is not originals["put"]
    instrumentor.uninstrument()
    for name in ("put", "get"):
        assert vars(tinyqueue.Queue)[name] is originals[name]
    queue = tinyqueue.Queue()
    queue.put(1)
    queue.get()
    assert recorder.spans == ()
    recorder.shutdown()
