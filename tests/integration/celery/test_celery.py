"""``telemetry-run celery -A app worker`` (prefork) and a producer under telemetry-run, over a
real Redis broker: the worker's spans are the children of the producer's, in one trace."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.apps import attributes, otlp_env, script
from tests.integration.conftest import LAUNCHER, PYTHON, launch
from tests.redis_server import RedisServer, running_redis_server

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("celery", reason="the celery package is not installed")
pytest.importorskip("redis", reason="the redis package (redis-py), Celery's broker client here")

APP = """
import os

from celery import Celery

app = Celery("app", broker=os.environ["BROKER_URL"], backend=os.environ["BROKER_URL"])
app.conf.broker_connection_retry_on_startup = True


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.boom")
def boom():
    raise ValueError("boom")
"""

PRODUCER = """
import os

from app import add, boom
from telemetry_run import trace

with trace.get_tracer("producer").start_as_current_span("job"):
    print(add.delay(2, 3).get(timeout=60))
    try:
        boom.delay().get(timeout=60)
    except ValueError as exc:
        print(exc)
"""

PRODUCER_KIND, CONSUMER_KIND = 4, 5  # opentelemetry.proto.trace.v1.Span.SpanKind


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis_server(tmp_path_factory.mktemp("redis")) as running:
        yield running


def _resources(receiver: OTLPReceiver) -> dict[bytes, dict[str, Any]]:
    """Each received span's resource attributes, by span id."""
    found: dict[bytes, dict[str, Any]] = {}
    for request in receiver.requests:
        for resource_spans in request.request.resource_spans:
            resource = attributes(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found[span.span_id] = resource
    return found


@contextlib.contextmanager
def _prefork_worker(
    folder: Path, env: dict[str, str], concurrency: int
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``celery -A app worker`` (prefork) under the launcher in ``folder``, logging to
    ``worker.log`` there; at the block's end a warm shutdown (SIGTERM: every process flushes),
    killed with its group after a bound that only catches a hang."""
    log = folder / "worker.log"
    command = [*LAUNCHER, script("celery"), "-A", "app", "worker", "--pool", "prefork"]
    command += ["--concurrency", str(concurrency), "--loglevel", "INFO"]
    command += ["--without-gossip", "--without-mingle"]
    with log.open("wb") as out:
        worker = subprocess.Popen(
            command,
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield worker, log
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)


def test_a_task_is_traced_from_the_producer_into_a_prefork_worker(
    otlp_receiver: OTLPReceiver, tmp_path: Path, server: RedisServer
) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "producer.py").write_text(textwrap.dedent(PRODUCER))
    # The broker's own redis commands (the worker polls with BRPOP) are not this test's subject.
    common = {
        "BROKER_URL": server.url,
        "PYTHONPATH": str(tmp_path),
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "redis",
    }
    # The worker exports only when a process ends (a schedule delay longer than the test): the
    # spans of the tasks arrive because each pool process flushes at its end.
    worker_env = otlp_env(
        otlp_receiver, OTEL_SERVICE_NAME="worker", OTEL_BSP_SCHEDULE_DELAY="600000", **common
    )
    with _prefork_worker(tmp_path, worker_env, concurrency=2) as (worker, log):
        producer_env = otlp_env(otlp_receiver, OTEL_SERVICE_NAME="producer", **common)
        result = launch([PYTHON, str(tmp_path / "producer.py")], producer_env, timeout=120)
        assert result.returncode == 0, result.stderr + log.read_text(errors="replace")
        assert result.stdout.split() == ["5", "boom"]
        assert {span.name for span in otlp_receiver.wait_for_spans(3, timeout=30)} == {
            "job",
            "send tasks.add",
            "send tasks.boom",
        }  # the producer's alone: the worker's wait for its pool processes' ends
    assert worker.returncode == 0, log.read_text(errors="replace")
    spans = otlp_receiver.wait_for_spans(5, timeout=30)
    assert sorted(span.name for span in spans) == [
        "job",
        "process tasks.add",
        "process tasks.boom",
        "send tasks.add",
        "send tasks.boom",
    ]
    by_name = {span.name: span for span in spans}
    job = by_name["job"]
    resources = _resources(otlp_receiver)
    for task in ("tasks.add", "tasks.boom"):
        send, process = by_name[f"send {task}"], by_name[f"process {task}"]
        assert send.kind == PRODUCER_KIND and process.kind == CONSUMER_KIND
        assert send.trace_id == process.trace_id == job.trace_id
        assert send.parent_span_id == job.span_id
        assert process.parent_span_id == send.span_id  # across the broker, in the headers
        assert resources[send.span_id]["service.name"] == "producer"
        assert resources[process.span_id]["service.name"] == "worker"
        # Run in a pool process (billiard's fork), not in the worker's main process.
        assert resources[process.span_id]["process.pid"] != worker.pid
        assert (
            attributes(process)["messaging.message.id"] == attributes(send)["messaging.message.id"]
        )
    boom = by_name["process tasks.boom"]
    assert boom.status.code == 2 and attributes(boom)["error.type"] == "ValueError"
    assert by_name["process tasks.add"].status.code == 0


HOUSEKEEPING_APP = """
import os

import redis
from celery import Celery

app = Celery("app", broker=os.environ["BROKER_URL"])
app.conf.broker_connection_retry_on_startup = True


@app.task(name="tasks.remember")
def remember(value):
    redis.Redis.from_url(os.environ["BROKER_URL"]).set("remembered", value)
"""

HOUSEKEEPING_PRODUCER = """
from app import remember
from telemetry_run import trace

with trace.get_tracer("producer").start_as_current_span("job"):
    remember.delay("x")
"""

#: How long the worker idles once ready: kombu polls and tends its unacked index meanwhile.
IDLE_SECONDS = 3.0


def _redis_roots(spans: list[Any]) -> list[str]:
    return [
        span.name
        for span in spans
        if attributes(span).get("db.system.name") == "redis" and not span.parent_span_id
    ]


@pytest.mark.parametrize("broker_root_spans", ["", "true"])
def test_an_idle_worker_traces_none_of_the_brokers_own_redis_commands(
    otlp_receiver: OTLPReceiver, tmp_path: Path, server: RedisServer, broker_root_spans: str
) -> None:
    """kombu's polling is no trace of its own; a task's own redis call is still its child."""
    (tmp_path / "app.py").write_text(textwrap.dedent(HOUSEKEEPING_APP))
    (tmp_path / "producer.py").write_text(textwrap.dedent(HOUSEKEEPING_PRODUCER))
    common = {"BROKER_URL": server.url, "PYTHONPATH": str(tmp_path)}
    if broker_root_spans:
        common["TELEMETRY_RUN_REDIS_BROKER_ROOT_SPANS"] = broker_root_spans
    worker_env = otlp_env(otlp_receiver, OTEL_SERVICE_NAME="worker", **common)
    with _prefork_worker(tmp_path, worker_env, concurrency=1) as (worker, log):
        for _ in range(600):  # a bound that only catches a worker that never starts
            if b" ready." in log.read_bytes() or worker.poll() is not None:
                break
            time.sleep(0.1)
        assert b" ready." in log.read_bytes(), log.read_text(errors="replace")
        time.sleep(IDLE_SECONDS)  # idle: only the broker's own commands run
        producer_env = otlp_env(otlp_receiver, OTEL_SERVICE_NAME="producer", **common)
        result = launch([PYTHON, str(tmp_path / "producer.py")], producer_env, timeout=120)
        assert result.returncode == 0, result.stderr
        for _ in range(600):  # the task has run once its log line is there
            if b"tasks.remember" in log.read_bytes() and b"succeeded" in log.read_bytes():
                break
            time.sleep(0.1)
    assert worker.returncode == 0, log.read_text(errors="replace")
    otlp_receiver.wait_for_spans(3, timeout=30)
    spans = otlp_receiver.spans()
    by_name = {span.name: span for span in spans}
    assert {"job", "send tasks.remember", "process tasks.remember", "SET"} <= set(by_name)
    # The task's own command: a child of its run, whatever the setting.
    assert by_name["SET"].parent_span_id == by_name["process tasks.remember"].span_id
    resources = _resources(otlp_receiver)
    worker_roots = _redis_roots(
        [s for s in spans if resources[s.span_id]["service.name"] == "worker"]
    )
    if broker_root_spans:
        assert worker_roots  # kombu's own commands, each a trace of its own, as asked
    else:
        assert worker_roots == []
        assert _redis_roots(spans) == []  # nor the producer's: its publish is in its span
