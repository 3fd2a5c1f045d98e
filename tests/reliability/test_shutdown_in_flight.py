"""A deploy's SIGTERM while requests are in flight: they complete, their spans are delivered
(collector up) or counted on the exit line (collector down), and the server exits in time."""

from __future__ import annotations

import re
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import endpoint_env, otlp_env, script, served

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("flask")
pytest.importorskip("gunicorn")

APP = """
import os
import time
import flask

app = flask.Flask(__name__)


@app.route("/slow/<int:n>")
def slow(n):
    open(os.path.join(os.environ["TEST_MARKERS"], f"in-{n}"), "w").close()  # in the view now
    time.sleep(1.0)
    return f"done {n}"
"""

EXIT_LINE = re.compile(
    r"telemetry-run: spans produced=(\d+) exported=(\d+) dropped=(\d+) "
    r"\(queue_full=(\d+), export_failed=(\d+), rejected=(\d+), shutdown=(\d+)\)"
)
SHUTDOWN_MS = 2000
IN_FLIGHT = 4


def _in_flight(url: str, answers: list[tuple[int, bytes]]) -> None:
    with urllib.request.urlopen(url, timeout=30) as response:
        answers.append((response.status, response.read()))


def _wait_until_inside(markers: Path, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(list(markers.iterdir())) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"only {len(list(markers.iterdir()))} of {count} requests reached the view")
        time.sleep(0.02)


def _serve_and_terminate(
    tmp_path: Path, env: dict[str, str]
) -> tuple[list[tuple[int, bytes]], str]:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**env, "TEST_MARKERS": str(markers)}
    port = free_port()
    command = [
        script("gunicorn"),
        "-w",
        "2",
        "--threads",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "app:app",
    ]
    answers: list[tuple[int, bytes]] = []
    with served(command, port=port, env=env, cwd=tmp_path) as app:
        threads = [
            threading.Thread(target=_in_flight, args=(app.url(f"/slow/{i}"), answers))
            for i in range(IN_FLIGHT)
        ]
        for thread in threads:
            thread.start()
        _wait_until_inside(markers, IN_FLIGHT)  # SIGTERM with every request inside its view
        returncode = app.stop()  # fails the test if the server does not stop (STOP_TIMEOUT)
        for thread in threads:
            thread.join(30)
        assert returncode == 0, app.log()
        log = app.log()
    return sorted(answers), log


def test_in_flight_requests_finish_and_their_spans_arrive(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    env = otlp_env(
        otlp_receiver,
        PYTHONPATH=str(tmp_path),
        OTEL_BSP_SCHEDULE_DELAY="3600000",  # nothing leaves before the exit flush
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT=str(SHUTDOWN_MS),
    )
    answers, log = _serve_and_terminate(tmp_path, env)
    assert answers == [(200, f"done {i}".encode()) for i in range(IN_FLIGHT)]
    spans = otlp_receiver.wait_for_spans(IN_FLIGHT, timeout=10)
    assert sorted(span.name for span in spans) == ["GET /slow/<int:n>"] * IN_FLIGHT
    assert EXIT_LINE.search(log) is None, log  # everything delivered: no exit line


def test_with_the_collector_down_the_loss_is_counted_and_exit_is_bounded(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    env = endpoint_env(
        f"http://127.0.0.1:{dead}",
        PYTHONPATH=str(tmp_path),
        OTEL_BSP_SCHEDULE_DELAY="3600000",
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT=str(SHUTDOWN_MS),
        # exports without a limit of their own: only the shutdown bound can end the exit
        # before the stop's timeout fails the test
        OTEL_EXPORTER_OTLP_TIMEOUT="3600000",
        OTEL_BSP_EXPORT_TIMEOUT="0",
    )
    answers, log = _serve_and_terminate(tmp_path, env)
    assert answers == [(200, f"done {i}".encode()) for i in range(IN_FLIGHT)]
    lines = [match.groups() for match in EXIT_LINE.finditer(log)]
    assert lines, log  # each worker that lost spans says so
    produced = sum(int(line[0]) for line in lines)
    exported = sum(int(line[1]) for line in lines)
    dropped = sum(int(line[2]) for line in lines)
    assert produced == IN_FLIGHT and exported == 0 and dropped == IN_FLIGHT, lines
