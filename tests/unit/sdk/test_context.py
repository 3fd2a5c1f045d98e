"""Context: immutable values, attach/detach, isolation across threads, tasks and pools."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading

import pytest

from telemetry_run.sdk.context import (
    Context,
    ContextThreadPoolExecutor,
    attach,
    create_key,
    detach,
    get_current,
    get_value,
    is_suppressed,
    set_value,
    suppress_instrumentation,
    wrap_with_current_context,
)
from telemetry_run.sdk.trace.current import get_current_span
from tests.unit.sdk.conftest import Recorder


def test_values_are_immutable_and_scoped_by_attach() -> None:
    key = create_key("user")
    ctx = set_value(key, "alice")
    assert get_value(key) is None
    assert get_value(key, ctx) == "alice"
    with pytest.raises(ValueError):
        ctx[key] = "bob"
    token = attach(ctx)
    assert get_value(key) == "alice"
    assert get_current()[key] == "alice"
    detach(token)
    assert get_value(key) is None


def test_create_key_is_unique() -> None:
    assert create_key("a") != create_key("a")


def test_detach_in_another_context_is_tolerated(caplog: pytest.LogCaptureFixture) -> None:
    token = attach(set_value("k", 1))

    def elsewhere() -> None:
        detach(token)  # a different thread has a different context: ValueError inside

    with caplog.at_level(logging.DEBUG, logger="telemetry_run"):
        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
    assert "another context" in caplog.text
    detach(token)
    detach(token)  # twice: tolerated too
    assert get_value("k") is None


def test_generator_holding_a_span_across_yield_never_raises(recorder: Recorder) -> None:
    def stream():  # type: ignore[no-untyped-def]
        with recorder.tracer.start_as_current_span("stream"):
            yield 1
            yield 2

    gen = stream()
    assert next(gen) == 1
    gen.close()  # exit runs in the caller's context: must not raise or leak
    assert get_current_span().is_recording() is False
    assert [s.name for s in recorder.spans] == ["stream"]


def test_threads_do_not_share_the_current_span(recorder: Recorder) -> None:
    seen: list[bool] = []
    with recorder.tracer.start_as_current_span("main"):
        t = threading.Thread(target=lambda: seen.append(get_current_span().is_recording()))
        t.start()
        t.join()
    assert seen == [False]


def test_wrap_with_current_context_carries_the_span_into_a_pool(recorder: Recorder) -> None:
    tracer = recorder.tracer

    def work(i: int) -> int:
        with tracer.start_as_current_span(f"work{i}"):
            return i

    with (
        tracer.start_as_current_span("request") as request,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        wrapped = wrap_with_current_context(work)
        assert sorted(pool.map(wrapped, range(4))) == [0, 1, 2, 3]  # concurrent reuse is fine
    parent_id = request.get_span_context().span_id
    for i in range(4):
        span = recorder.by_name(f"work{i}")
        assert span.parent is not None and span.parent.span_id == parent_id


def test_context_thread_pool_executor(recorder: Recorder) -> None:
    tracer = recorder.tracer
    with tracer.start_as_current_span("request") as request, ContextThreadPoolExecutor(2) as pool:
        seen = [
            f.result()
            for f in [pool.submit(lambda: get_current_span().get_span_context()) for _ in range(3)]
        ]
        mapped = list(pool.map(lambda _: get_current_span() is request, range(3)))
    assert all(ctx == request.get_span_context() for ctx in seen)
    assert mapped == [True, True, True]


def test_asyncio_tasks_have_isolated_contexts(recorder: Recorder) -> None:
    key = "k"

    async def task(value: str) -> tuple[object, object]:
        token = attach(set_value(key, value))
        await asyncio.sleep(0.01)
        got = get_value(key)
        detach(token)
        return value, got

    async def main() -> list[tuple[object, object]]:
        return list(await asyncio.gather(*(task(v) for v in "abc")))

    assert all(a == b for a, b in asyncio.run(main()))


def test_suppression_flag() -> None:
    assert not is_suppressed()
    with suppress_instrumentation():
        assert is_suppressed()
        assert is_suppressed(get_current())
    assert not is_suppressed()
    assert not is_suppressed(Context())
