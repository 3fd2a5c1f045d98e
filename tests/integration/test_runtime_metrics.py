"""Runtime metrics under ``telemetry-run`` (#18): an application that records nothing itself
exports its process's figures to the real OTLP receiver, and under gunicorn each worker
exports its own, under its own pid."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from telemetry_run.testing.otlp import OTLPReceiver, free_port
from tests.integration.apps import served
from tests.integration.conftest import LAUNCHER, PYTHON, clean_env
from tests.integration.test_servers import gunicorn_command, requires

pytestmark = pytest.mark.timeout(180)

HANG_BOUND = 60.0  # seconds: only catches a hang, never a measure of speed

# Records nothing: reads stdin until the test closes it, then exits (the exit flush runs).
IDLE_APP = """
import os, sys
print(os.getpid(), flush=True)
sys.stdin.read()
"""

UNITS = {
    "process.cpu.time": "s",
    "process.memory.usage": "By",
    "process.thread.count": "{thread}",
    "cpython.gc.collections": "{collection}",
    "cpython.gc.collected_objects": "{object}",
    "cpython.gc.uncollectable_objects": "{object}",
}


def _env(receiver: OTLPReceiver, **extra: str) -> dict[str, str]:
    return clean_env(
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_METRIC_EXPORT_INTERVAL="300",
        OTEL_SERVICE_NAME="runtime",
        **extra,
    )


def _pid(resource_metrics: Any) -> int:
    (pid,) = [
        kv.value.int_value for kv in resource_metrics.resource.attributes if kv.key == "process.pid"
    ]
    return int(pid)


def _runtime_by_pid(receiver: OTLPReceiver) -> dict[int, dict[str, Any]]:
    """The last runtime metric of each name each pid exported so far."""
    found: dict[int, dict[str, Any]] = {}
    for request in list(receiver.metric_requests):
        for resource_metrics in request.request.resource_metrics:
            pid = _pid(resource_metrics)
            for scope_metrics in resource_metrics.scope_metrics:
                if scope_metrics.scope.name != "telemetry_run.instrumentors.runtime_metrics":
                    continue
                for metric in scope_metrics.metrics:
                    found.setdefault(pid, {})[metric.name] = metric
    return found


def _wait_until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG_BOUND
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _values(metric: Any) -> dict[Any, float]:
    """Each point's value by its one attribute's value (None without one)."""
    values: dict[Any, float] = {}
    for point in metric.sum.data_points:
        key = None
        for kv in point.attributes:
            key = kv.value.string_value or kv.value.int_value
        values[key] = point.as_double if point.HasField("as_double") else point.as_int
    return values


def test_an_app_that_records_nothing_exports_its_runtime_metrics(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    app = tmp_path / "idle.py"
    app.write_text(IDLE_APP)
    proc = subprocess.Popen(
        [*LAUNCHER, PYTHON, str(app)],
        env=_env(otlp_receiver),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        _wait_until(
            lambda: set(UNITS) <= set(_runtime_by_pid(otlp_receiver).get(pid, {})),
            "the runtime metrics of the app",
        )
        _, stderr = proc.communicate("", timeout=HANG_BOUND)  # stdin closed: the app ends
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert stderr == ""  # every export delivered, nothing of ours failed
    metrics = _runtime_by_pid(otlp_receiver)[pid]
    assert {name: metrics[name].unit for name in UNITS} == UNITS
    cpu = metrics["process.cpu.time"]
    assert cpu.sum.is_monotonic
    assert set(_values(cpu)) == {"user", "system"}
    assert _values(cpu)["user"] > 0  # the interpreter's start-up alone used some
    assert _values(metrics["process.memory.usage"])[None] > 0
    assert _values(metrics["process.thread.count"])[None] >= 2  # main, the export thread
    assert set(_values(metrics["cpython.gc.collections"])) >= {0, 1, 2}


# gunicorn's post_fork hook: each worker writes its pid, preloaded app or not.
GUNICORN_CONF = """
import os


def post_fork(server, worker):
    with open(os.environ["TEST_WORKER_PIDS"], "a") as pids:
        pids.write(f"{os.getpid()}\\n")
"""

WSGI_APP = """
import os

if os.environ.get("TEST_METER_AT_IMPORT"):
    # Metrics asked for before the workers are forked (--preload): the provider is built in
    # the master and inherited by each worker.
    from telemetry_run.sdk.metrics import get_meter

    get_meter("app").create_counter("app.started").add(1)


def application(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload-meter"])
def test_each_gunicorn_worker_exports_its_own_runtime_metrics_under_its_own_pid(
    otlp_receiver: OTLPReceiver, tmp_path: Path, preload: bool
) -> None:
    requires("gunicorn")
    (tmp_path / "wsgi_app.py").write_text(WSGI_APP)
    (tmp_path / "gunicorn_conf.py").write_text(GUNICORN_CONF)
    pids_file = tmp_path / "pids"
    env = _env(
        otlp_receiver,
        PYTHONPATH=str(tmp_path),
        TEST_WORKER_PIDS=str(pids_file),
        **({"TEST_METER_AT_IMPORT": "1"} if preload else {}),
    )
    port = free_port()
    command = gunicorn_command(
        port, "wsgi_app:application", preload=preload, options=["--config", "gunicorn_conf.py"]
    )
    with served(command, port=port, env=env, cwd=tmp_path) as app:
        master = app.proc.pid  # the launcher execs gunicorn

        def workers() -> set[int]:
            text = pids_file.read_text() if pids_file.exists() else ""
            return {int(line) for line in text.split()} - {master}

        _wait_until(lambda: len(workers()) == 2, "two workers")
        _wait_until(
            lambda: workers() <= set(_runtime_by_pid(otlp_receiver)),
            "each worker's runtime metrics",
        )
        app.stop(HANG_BOUND)
        log_text = app.log()
    assert "Traceback" not in log_text and "telemetry-run:" not in log_text, log_text
    by_pid = _runtime_by_pid(otlp_receiver)
    for worker in workers():
        cpu = by_pid[worker]["process.cpu.time"]
        assert cpu.unit == "s" and set(_values(cpu)) == {"user", "system"}
    # What the master recorded before forking stays the master's: no worker exports it again.
    started = [
        (_pid(resource_metrics), point.as_int)
        for request in otlp_receiver.metric_requests
        for resource_metrics in request.request.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == "app.started"
        for point in metric.sum.data_points
    ]
    assert {pid for pid, _ in started} <= {master}
    assert {value for _, value in started} <= {1}
