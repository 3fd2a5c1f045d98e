"""``OTEL_METRICS_EXPORTER=prometheus`` under ``telemetry-run gunicorn`` (and uWSGI) with two
workers (#18): each process serves its own series on its own port, and the request counts they
serve add up to the requests made, as a scraper reading every port sees them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.conftest import LAUNCHER, clean_env
from tests.integration.test_servers import gunicorn_command, uwsgi_command

pytestmark = pytest.mark.timeout(180)

HANG_BOUND = 60.0  # seconds: only catches a hang, never a measure of speed
PORTS_SCANNED = 8  # the configured port and the next ones the processes may have moved to
REQUESTS = 24

FLASK_APP = """
import os

from flask import Flask

if os.environ.get("TEST_METER_AT_IMPORT"):
    # --preload: the pipeline (and its port) is built in the master, before the fork.
    from telemetry_run.sdk.metrics import get_meter

    get_meter("shop").create_counter("shop.started").add(1)

app = Flask(__name__)


@app.route("/items/<int:item_id>")
def item(item_id):
    return {"id": item_id}
"""


class ServedApp(NamedTuple):
    """A running ``telemetry-run gunicorn`` (or uWSGI): its ports (the app's, the first metrics
    one) and log; shared with test_prometheus_server.py, where a real Prometheus scrapes it."""

    proc: subprocess.Popen[bytes]
    app_port: int
    metrics_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


COUNT = "http_server_request_duration_seconds_count"
BUCKET_INF = "http_server_request_duration_seconds_bucket"


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except (OSError, urllib.error.URLError):
        return None


def _series(text: str, name: str) -> list[tuple[str, float]]:
    """``(labels, value)`` of each sample of ``name``."""
    found = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line[len(name) :].rpartition(" ")
            found.append((labels, float(value)))
    return found


def _counted(pages: dict[int, str]) -> float:
    return sum(value for text in pages.values() for _, value in _series(text, COUNT))


def _complete(pages: dict[int, str], requests: int) -> bool:
    """All three processes serve, every request is counted, and each process's runtime metrics
    are there (they join its pipeline on a timer, which a loaded machine runs late)."""
    return (
        len(pages) >= 3
        and _counted(pages) >= requests
        and all(_series(text, "process_cpu_time_seconds_total") for text in pages.values())
    )


def _gunicorn(app_port: int, preload: bool) -> list[str]:
    return gunicorn_command(app_port, "shop:app", preload=preload)


def _uwsgi(app_port: int, preload: bool) -> list[str]:
    return uwsgi_command(app_port, "shop:app", lazy_apps=not preload)


SERVERS = {"gunicorn": _gunicorn, "uwsgi": _uwsgi}


@contextlib.contextmanager
def serving_metrics(
    tmp_path: Path,
    app_source: str,
    *,
    preload: bool = False,
    server: str = "gunicorn",
    **env_extra: str,
) -> Iterator[ServedApp]:
    """``telemetry-run gunicorn -w 2`` (or uWSGI with two processes) of ``shop:app`` with the
    Prometheus exporter on 127.0.0.1, stopped (SIGTERM, then SIGKILL of its group) when the
    block ends."""
    (tmp_path / "shop.py").write_text(app_source)
    metrics_port = free_port()
    app_port = free_port()
    command = SERVERS[server](app_port, preload)
    env = clean_env(
        PYTHONPATH=str(tmp_path),
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_port),
        OTEL_SERVICE_NAME="shop",
        # Each process's runtime metrics build its pipeline 0.3 s in: the master and both
        # workers serve, whether a request reached them or not.
        OTEL_METRIC_EXPORT_INTERVAL="300",
        **env_extra,
    )
    log_path = tmp_path / f"{server}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*LAUNCHER, *command],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield ServedApp(proc, app_port, metrics_port, log_path)
        proc.send_signal(signal.SIGTERM)
        proc.wait(HANG_BOUND)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.wait(10)


def get_items(
    app: ServedApp,
    first: int,
    count: int,
    deadline: float,
    headers: Callable[[int], dict[str, str]] | None = None,
) -> list[bytes]:
    """``count`` answered requests from ``/items/<first>`` on (a new connection each: the two
    workers share them), each with the ``headers`` of its item, waiting for gunicorn to listen;
    their bodies."""
    bodies: list[bytes] = []
    while len(bodies) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"gunicorn answered {len(bodies)} requests:\n{app.log()}")
        item = first + len(bodies)
        request = urllib.request.Request(
            f"http://127.0.0.1:{app.app_port}/items/{item}",
            headers=headers(item) if headers else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
                bodies.append(response.read())
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)  # not listening yet
    return bodies


def serving_pages(app: ServedApp, deadline: float, requests: int) -> dict[int, str]:
    """Every port's page once the master and both workers serve, ``requests`` are counted and
    each process's runtime metrics are there (or the deadline passed: the caller asserts)."""
    while True:  # a request is measured when its body is closed, just after the answer
        first = app.metrics_port
        scraped = {p: _scrape(p) for p in range(first, first + PORTS_SCANNED)}
        pages = {port: text for port, text in scraped.items() if text is not None}
        if _complete(pages, requests) or time.monotonic() > deadline:
            return pages
        time.sleep(0.2)


@pytest.mark.parametrize("server", ["gunicorn", "uwsgi"])
@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload-meter"])
def test_two_workers_serve_their_own_series_that_add_up_to_the_requests(
    tmp_path: Path, preload: bool, server: str
) -> None:
    """uWSGI forks its workers in C (no Python fork hooks): the SDK is repaired through its
    post-fork hook, and each worker still serves on a port of its own."""
    extra = {"TEST_METER_AT_IMPORT": "1"} if preload else {}
    with serving_metrics(tmp_path, FLASK_APP, preload=preload, server=server, **extra) as app:
        deadline = time.monotonic() + HANG_BOUND
        get_items(app, 0, REQUESTS, deadline)
        pages = serving_pages(app, deadline, REQUESTS)
        if server == "uwsgi":  # a lazy worker stopped while it loads the app prints a traceback
            apps = 1 if preload else 2
            while app.log().count(" ready in ") < apps and time.monotonic() < deadline:
                time.sleep(0.1)
    log_text = app.log()
    assert "Traceback" not in log_text, log_text
    serving = {port: text for port, text in pages.items() if _series(text, COUNT)}
    assert _counted(pages) == REQUESTS, (pages, log_text)
    # The master and both workers: each a process of its own on a port of its own.
    pids = set()
    for text in pages.values():
        (info,) = [labels for labels, _ in _series(text, "target_info")]
        assert 'service_name="shop"' in info
        pids.add(info.split('process_pid="', 1)[1].split('"', 1)[0])
        assert _series(text, "process_cpu_time_seconds_total"), text
    assert len(pages) == 3 and len(pids) == 3, (sorted(pages), log_text)
    started = [v for text in pages.values() for _, v in _series(text, "shop_started_total")]
    assert started == ([1.0] if preload else [])  # the master's count, never a worker's copy
    for text in serving.values():  # the requests' histogram, as Prometheus reads it
        labels, _ = _series(text, COUNT)[0]
        assert 'http_route="/items/<int:item_id>"' in labels and "/items/1" not in text
        infinite = [v for lab, v in _series(text, BUCKET_INF) if 'le="+Inf"' in lab]
        assert sum(infinite) == sum(v for _, v in _series(text, COUNT))
