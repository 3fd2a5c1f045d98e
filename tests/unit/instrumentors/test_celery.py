"""The Celery instrumentor with a real Redis broker and an embedded worker (one process)."""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("celery", reason="the celery package is not installed")
pytest.importorskip("redis", reason="the redis package (redis-py), Celery's broker client here")
from celery import Celery
from celery.contrib.testing.worker import start_worker

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.celery import CeleryInstrumentor
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests
from tests.redis_server import RedisServer, running_redis_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis_server(tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture(scope="module")
def app(server: RedisServer) -> Iterator[Any]:
    """One app and its tasks for the module: Celery keeps task names process-wide."""
    app = Celery("unit", broker=server.url, backend=server.url)
    app.conf.broker_connection_retry_on_startup = True

    @app.task(name="tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="tasks.boom")
    def boom() -> None:
        raise ValueError("boom")

    @app.task(name="tasks.flaky", bind=True, max_retries=1, default_retry_delay=0)
    def flaky(self: Any) -> str:
        if self.request.retries == 0:
            raise self.retry(exc=RuntimeError("not yet"))
        return "done"

    yield app
    # Before the server stops: results left for the collector unsubscribe from it in their
    # __del__, and against a stopped server Celery would retry that for 20 s at exit. Celery's
    # own connections collected on the way are not closed by it: its ResourceWarning, not ours.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
        app.close()


@pytest.fixture
def traced(span_recorder: SpanRecorder, app: Any) -> Iterator[tuple[Any, SpanRecorder]]:
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(span_recorder.provider, config_for(plugin, {}))
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield app, span_recorder
    finally:
        instrumentor.uninstrument()


def _one(recorder: SpanRecorder, name: str, count: int = 1) -> Any:
    """The span ``name`` (the last of ``count``): the worker ends it just after the result is
    stored, so it is waited for, with an outer bound that only catches a span never ended."""
    deadline = time.monotonic() + 30
    while len(recorder.by_name(name)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    if count == 1:
        return recorder.one(name)
    return recorder.by_name(name)


def test_the_worker_span_is_the_child_of_the_send(traced: Any) -> None:
    app, recorder = traced
    with recorder.tracer.start_as_current_span("request") as parent:
        result = app.tasks["tasks.add"].delay(2, 3)
    assert result.get(timeout=30) == 5
    send, process = _one(recorder, "send tasks.add"), _one(recorder, "process tasks.add")
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert send.parent is not None
    assert send.parent.span_id == parent.get_span_context().span_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.context.trace_id == send.context.trace_id
    assert process.parent.is_remote  # it came in the message's headers, across the broker
    assert send.attributes["messaging.message.id"] == result.id
    assert process.attributes["messaging.message.id"] == result.id
    assert send.attributes["messaging.destination.name"] == "celery"
    assert process.attributes["celery.task.state"] == "SUCCESS"
    assert process.status.is_unset


def test_a_failing_task_is_an_error_span(traced: Any) -> None:
    app, recorder = traced
    result = app.tasks["tasks.boom"].delay()
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=30)
    process = _one(recorder, "process tasks.boom")
    assert process.status.status_code is StatusCode.ERROR
    assert process.attributes["error.type"] == "ValueError"
    assert process.attributes["celery.task.state"] == "FAILURE"
    assert [event.name for event in process.events] == ["exception"]


def test_a_retry_is_an_event_and_a_new_send_under_the_first_run(traced: Any) -> None:
    app, recorder = traced
    assert app.tasks["tasks.flaky"].delay().get(timeout=30) == "done"
    runs = _one(recorder, "process tasks.flaky", count=2)
    first, second = sorted(runs, key=lambda span: span.start_time)
    resend = [s for s in recorder.by_name("send tasks.flaky") if s.parent is not None]
    resend = [s for s in resend if s.parent.span_id == first.context.span_id]
    assert len(resend) == 1  # the retry is sent from inside the first run
    assert second.parent is not None and second.parent.span_id == resend[0].context.span_id
    assert first.attributes["celery.task.state"] == "RETRY"
    assert [event.name for event in first.events] == ["retry"]
    assert first.status.is_unset
    assert second.attributes["celery.task.retries"] == 1
    assert second.attributes["celery.task.state"] == "SUCCESS"


contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "celery"),
    exercise="tests.unit.instrumentors.exercises:celery_send",
)
