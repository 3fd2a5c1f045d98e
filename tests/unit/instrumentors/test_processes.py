"""The multiprocessing instrumentor's task wrapper: what crosses the process boundary (#16)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import pool as mp_pool
from multiprocessing import process as mp_process
from typing import Any

import pytest

from telemetry_run.instrumentors.processes import ProcessesInstrumentor, RemoteContext
from telemetry_run.sdk import baggage
from telemetry_run.sdk.context import attach, detach
from telemetry_run.sdk.trace.current import get_current_span
from telemetry_run.testing import SpanRecorder


def seen_in_child() -> tuple[str, str | None]:
    """What a task sees once unpickled: the ids of its parent and the baggage."""
    context = get_current_span().get_span_context()
    return f"{context.trace_id:032x}-{context.span_id:016x}", baggage.get_baggage("tenant")


@pytest.fixture
def instrumented(span_recorder: SpanRecorder) -> Iterator[ProcessesInstrumentor]:
    instrumentor = ProcessesInstrumentor()
    assert instrumentor.instrument(span_recorder.provider)
    yield instrumentor
    instrumentor.uninstrument()


def test_a_task_submitted_in_a_span_carries_its_ids_and_baggage_through_pickle(
    instrumented: ProcessesInstrumentor, span_recorder: SpanRecorder
) -> None:
    token = attach(baggage.set_baggage("tenant", "acme"))
    try:
        with span_recorder.tracer.start_as_current_span("submitter") as span:
            task = instrumented._wrap(seen_in_child)
    finally:
        detach(token)
    assert isinstance(task, RemoteContext)
    assert set(task.carrier) == {"traceparent", "baggage"}
    context = span.get_span_context()
    unpickled = pickle.loads(pickle.dumps(task))  # in another process, nothing is current
    assert unpickled() == (f"{context.trace_id:032x}-{context.span_id:016x}", "acme")
    assert get_current_span().get_span_context().is_valid is False  # detached after the task


def test_outside_a_span_the_task_is_left_as_it_is(instrumented: ProcessesInstrumentor) -> None:
    assert instrumented._wrap(seen_in_child) is seen_in_child


def test_a_malformed_carrier_runs_the_task_without_a_parent() -> None:
    task = RemoteContext(seen_in_child, {"traceparent": "00-zz"})
    assert task() == ("0" * 32 + "-" + "0" * 16, None)


def test_uninstrument_puts_every_patched_method_back(span_recorder: SpanRecorder) -> None:
    targets: list[tuple[Any, str]] = [
        (mp_process.BaseProcess, "start"),
        (ProcessPoolExecutor, "submit"),
        *[(mp_pool.Pool, name) for name in ("apply_async", "map", "imap", "imap_unordered")],
    ]
    before = [vars(owner)[name] for owner, name in targets]
    instrumentor = ProcessesInstrumentor()
    instrumentor.instrument(span_recorder.provider)
    assert all(vars(o)[n] is not b for (o, n), b in zip(targets, before, strict=True))
    instrumentor.uninstrument()
    assert [vars(owner)[name] for owner, name in targets] == before


def test_submits_in_one_span_share_the_headers_until_the_baggage_changes(
    instrumented: ProcessesInstrumentor, span_recorder: SpanRecorder
) -> None:
    with span_recorder.tracer.start_as_current_span("submitter"):
        first, second = instrumented._wrap(seen_in_child), instrumented._wrap(seen_in_child)
        token = attach(baggage.set_baggage("tenant", "acme"))
        try:
            third = instrumented._wrap(seen_in_child)
        finally:
            detach(token)
    with span_recorder.tracer.start_as_current_span("another"):
        fourth = instrumented._wrap(seen_in_child)
    assert first.carrier is second.carrier
    assert third.carrier == {**first.carrier, "baggage": "tenant=acme"}
    assert fourth.carrier["traceparent"] != first.carrier["traceparent"]
