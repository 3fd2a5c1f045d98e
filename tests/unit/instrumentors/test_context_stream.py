"""A body a consumer always closes (a WSGI response, PEP 3333), run in its call's context.

``Call.stream(body, closed=True)`` (and ``end=False``, Django's streamed responses) gives
``_NativeStream`` where the native module is built, ``_Stream`` otherwise; every test here runs
with each (``tests/native_twins.py``), so the two stay alike step for step.
"""

from __future__ import annotations

import gc
import traceback
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from telemetry_run.instrumentors import toolkit
from telemetry_run.instrumentors.toolkit import HTTP_SERVER, Call, server_call
from telemetry_run.sdk import _native
from telemetry_run.sdk.trace.api import StatusCode
from telemetry_run.sdk.trace.current import get_current_span
from telemetry_run.testing import SpanRecorder
from tests.native_twins import require_native, twins

stream_twins = twins("telemetry_run.instrumentors.toolkit", "_NativeStream")


def _call(recorder: SpanRecorder) -> Call:
    site = server_call(
        recorder.tracer,
        "test server",
        attributes=lambda headers: {"url.path": "/"},
        span_name="GET",
        carrier=lambda headers: headers,
        rules=HTTP_SERVER,
    )
    call = site.start({})
    assert call is not None
    call.detach()  # as a framework does once its entry point returns the body
    return call


class Body:
    """A WSGI body: chunks, an optional failure, and a ``close`` the server calls."""

    def __init__(self, chunks: list[bytes], *, fails: BaseException | None = None) -> None:
        self.chunks = chunks
        self.fails = fails
        self.closed = 0
        self.seen: list[Any] = []  # the span current at each step

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.seen.append(get_current_span())
            yield chunk
        self.seen.append(get_current_span())
        if self.fails is not None:
            raise self.fails

    def close(self) -> None:
        self.closed += 1


def test_each_step_runs_in_the_calls_context_and_the_callers_comes_back(
    span_recorder: SpanRecorder,
) -> None:
    call = _call(span_recorder)
    body = Body([b"a", b"b"])
    stream = call.stream(body, closed=True)
    outside = get_current_span()
    assert next(stream) == b"a"
    assert get_current_span() is outside  # between steps: the caller's context
    assert list(stream) == [b"b"]
    assert body.seen == [call.span] * 3
    assert get_current_span() is outside
    (span,) = span_recorder.spans  # ended when exhausted, before the server's close
    assert span.name == "GET"
    stream.close()
    assert body.closed == 1
    assert len(span_recorder.spans) == 1  # closing an ended call ends nothing more


def test_closing_early_closes_the_body_and_ends_the_span(span_recorder: SpanRecorder) -> None:
    call = _call(span_recorder)
    body = Body([b"a", b"b"])
    stream = call.stream(body, closed=True)
    assert next(stream) == b"a"
    assert span_recorder.spans == ()
    stream.close()
    assert body.closed == 1
    assert len(span_recorder.spans) == 1
    assert call.ended


def test_a_step_that_raises_records_the_error_and_the_exception_goes_on_unchanged(
    span_recorder: SpanRecorder,
) -> None:
    call = _call(span_recorder)
    error = ValueError("lost the database")
    stream = call.stream(Body([b"a"], fails=error), closed=True)
    assert next(stream) == b"a"
    with pytest.raises(ValueError) as raised:
        next(stream)
    assert raised.value is error
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert "__iter__" in frames  # raised where the body raised it
    (span,) = span_recorder.spans
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert span.attributes["error.type"] == "ValueError"


def test_a_body_whose_close_raises_still_ends_the_span(span_recorder: SpanRecorder) -> None:
    class Failing(Body):
        def close(self) -> None:
            raise OSError("socket gone")

    call = _call(span_recorder)
    stream = call.stream(Failing([b"a"]), closed=True)
    with pytest.raises(OSError, match="socket gone"):
        stream.close()
    assert len(span_recorder.spans) == 1


def test_without_end_the_stream_leaves_the_span_to_its_owner(span_recorder: SpanRecorder) -> None:
    call = _call(span_recorder)
    body = Body([b"a"])
    stream = call.stream(body, end=False)
    assert list(stream) == [b"a"]
    assert body.seen == [call.span] * 2
    stream.close()
    assert body.closed == 1
    assert span_recorder.spans == ()  # the owner (Django's response) ends it
    call.end()
    assert len(span_recorder.spans) == 1


def test_a_body_without_close_and_a_plain_list(span_recorder: SpanRecorder) -> None:
    call = _call(span_recorder)
    stream = call.stream([b"x", b"y"], closed=True)
    assert list(stream) == [b"x", b"y"]
    stream.close()  # nothing to close: only the end
    assert len(span_recorder.spans) == 1


def test_a_body_whose_close_is_not_readable_is_treated_as_without_close(
    span_recorder: SpanRecorder,
) -> None:
    class Odd(Body):
        @property
        def close(self) -> Any:
            raise AttributeError("no close here")

    call = _call(span_recorder)
    stream = call.stream(Odd([b"a"]), closed=True)
    stream.close()
    assert len(span_recorder.spans) == 1


def test_a_failure_of_ours_at_the_end_is_reported_and_the_body_still_ends_normally(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = _call(span_recorder)
    monkeypatch.setattr(type(call.span), "end", _raise_on_end)
    stream = call.stream(Body([b"a"]), closed=True)
    assert list(stream) == [b"a"]  # the consumer sees a normal end
    assert call.ended  # and our end ran once (it failed, reported)
    assert [error.where for error in span_recorder.internal_errors] == ["test server: call end"]
    span_recorder.internal_errors.clear()  # expected: the fixture fails the test on others


def _raise_on_end(self: Any, end_time: int | None = None) -> None:
    raise RuntimeError("a bug of ours")


def test_the_stream_can_be_weakly_referenced_and_a_cycle_through_it_is_collected(
    span_recorder: SpanRecorder,
) -> None:
    call = _call(span_recorder)

    class Cyclic(Body):
        stream: Any = None

    body = Cyclic([b"a"])
    stream = call.stream(body, closed=True)
    body.stream = stream  # the body holds its own stream: a cycle
    watched = weakref.ref(stream)
    del stream, body
    gc.collect()
    assert watched() is None


def test_the_native_twin_checks_its_arguments() -> None:
    require_native()
    assert _native.speedups is not None
    native = _native.speedups.ContextStream
    with pytest.raises(TypeError, match="hooks"):
        native([], object(), True, (1, 2, 3, 4))
    with pytest.raises(TypeError):
        native(5, object(), True, toolkit._STREAM_HOOKS)  # not iterable, as iter(5)


class _Interrupt(BaseException):
    """Not an Exception: ``guard`` lets it through, as it lets KeyboardInterrupt through."""


def test_an_interrupt_while_recording_a_failed_step_carries_the_steps_error_as_its_context(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = _call(span_recorder)

    def interrupted(self: Call, exc: BaseException) -> None:
        raise _Interrupt

    monkeypatch.setattr(Call, "record_exception", interrupted)
    error = ValueError("lost the database")
    stream = call.stream(Body([], fails=error), closed=True)
    with pytest.raises(_Interrupt) as raised:
        next(stream)
    assert raised.value.__context__ is error  # as Python chains an exception raised in ``except``
    assert call.ended  # the span still ended (``_stream_step_failed``'s ``finally``)
