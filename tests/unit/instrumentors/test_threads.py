"""The threading instrumentor: the caller's context, not its span, and a clean undo (#16)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from telemetry_run.instrumentors.threads import ThreadsInstrumentor
from telemetry_run.testing import SpanRecorder

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


@pytest.fixture
def instrumented(span_recorder: SpanRecorder) -> Iterator[ThreadsInstrumentor]:
    instrumentor = ThreadsInstrumentor()
    assert instrumentor.instrument(span_recorder.provider)
    yield instrumentor
    instrumentor.uninstrument()


def _in_thread(fn: object) -> None:
    thread = threading.Thread(target=fn)  # type: ignore[arg-type]
    thread.start()
    thread.join()


def test_a_thread_and_a_pool_task_see_the_callers_context_variables_too(
    instrumented: ThreadsInstrumentor,
) -> None:
    seen: list[str] = []
    token = REQUEST_ID.set("r-1")
    try:
        _in_thread(lambda: seen.append(REQUEST_ID.get()))
        with ThreadPoolExecutor(1) as pool:
            seen.append(pool.submit(REQUEST_ID.get).result())
            seen += pool.map(lambda _: REQUEST_ID.get(), [1, 2])
    finally:
        REQUEST_ID.reset(token)
    assert seen == ["r-1"] * 4


def test_a_subclass_with_its_own_run_gets_the_context(
    instrumented: ThreadsInstrumentor, span_recorder: SpanRecorder
) -> None:
    class Worker(threading.Thread):
        def run(self) -> None:
            span_recorder.tracer.start_span("in-worker").end()

    with span_recorder.tracer.start_as_current_span("parent"):
        worker = Worker()
        worker.start()
        worker.join()
    assert span_recorder.one("in-worker").parent == span_recorder.one("parent").context


def test_uninstrument_puts_the_originals_back_and_new_work_starts_empty(
    span_recorder: SpanRecorder,
) -> None:
    start = threading.Thread.start
    submit = ThreadPoolExecutor.submit
    instrumentor = ThreadsInstrumentor()
    instrumentor.instrument(span_recorder.provider)
    assert threading.Thread.start is not start and ThreadPoolExecutor.submit is not submit
    instrumentor.uninstrument()
    assert threading.Thread.start is start and ThreadPoolExecutor.submit is submit

    with span_recorder.tracer.start_as_current_span("parent"):
        _in_thread(lambda: span_recorder.tracer.start_span("orphan").end())
    assert span_recorder.one("orphan").parent is None
