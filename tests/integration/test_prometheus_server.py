"""A real Prometheus server scrapes ``telemetry-run gunicorn -w 2`` (#18): what its HTTP API
answers about our series is what the application did, and no counter looks reset across scrapes.

The targets are the ports the master and both workers serve, found by scraping the bounded range
the exporter moves along (as test_prometheus_exporter.py does) before Prometheus starts: a
static target that nothing serves would only add a ``down`` target to tell apart.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.test_prometheus_exporter import (
    HANG_BOUND,
    ServedApp,
    get_items,
    serving_metrics,
    serving_pages,
)
from tests.prometheus_server import PrometheusServer, prometheus_binary, running_prometheus

pytestmark = pytest.mark.timeout(240)

FIRST_BURST = 12
SECOND_BURST = 12

SHOP_APP = """
import os

from flask import Flask

from telemetry_run.sdk.metrics import get_meter

orders = get_meter("shop").create_counter("shop.orders", "{order}")
orders.add(0)  # the series exists from the worker's start, as Prometheus users initialise them

app = Flask(__name__)


@app.route("/items/<int:item_id>")
def item(item_id):
    orders.add(item_id % 3 + 1)
    return {"id": item_id, "pid": os.getpid()}
"""

COUNT = "http_server_request_duration_seconds_count"
BUCKET = "http_server_request_duration_seconds_bucket"
ORDERS = "shop_orders_total"
TRACE_PREFIX = "5eed" * 4


def _total(server: PrometheusServer, promql: str) -> float:
    """The single value of an aggregated query, 0 while it has no series."""
    result = server.query(promql)
    return result[0]["value"] if result else 0.0


def _wait_for(server: PrometheusServer, promql: str, expected: float, deadline: float) -> None:
    """Until Prometheus answers ``expected`` (a scrape came in after what was counted)."""
    while _total(server, promql) != expected:
        if time.monotonic() > deadline:
            return  # the assertions that follow say what it answered
        time.sleep(0.25)


def _up_targets(server: PrometheusServer, ports: list[int], deadline: float) -> list[str]:
    """The instances whose last scrape succeeded, once every port's has (or the deadline passed:
    a scrape that timed out on a loaded machine is followed by another a second later)."""
    while True:
        targets = server.api("targets", state="active")["activeTargets"]
        up = sorted(t["labels"]["instance"] for t in targets if t["health"] == "up")
        if len(up) == len(ports) or time.monotonic() > deadline:
            return up
        time.sleep(0.25)


def _pids(bodies: list[bytes]) -> Counter[int]:
    return Counter(json.loads(body)["pid"] for body in bodies)


def _traceparent(item: int) -> dict[str, str]:
    """A sampled parent of its own for each request: the trace id says which request it was."""
    return {"traceparent": f"00-{TRACE_PREFIX}{item:016x}-{item + 1:016x}-01"}


def _second_burst(app: ServedApp, first_pids: Counter[int], deadline: float) -> list[bytes]:
    """At least ``SECOND_BURST`` requests, more (4 at a time) until one reached a worker that
    also served the first burst: its series then grows between scrapes, whatever the kernel's
    choice of worker for each connection."""
    bodies = get_items(app, FIRST_BURST, SECOND_BURST, deadline, _traceparent)
    while not set(_pids(bodies)) & set(first_pids):
        bodies += get_items(app, FIRST_BURST + len(bodies), 4, deadline, _traceparent)
    return bodies


def _exemplar_trace_ids(server: PrometheusServer, name: str, since: float) -> set[str]:
    found = server.api("query_exemplars", query=name, start=str(since), end=str(time.time() + 60))
    return {e["labels"]["trace_id"] for series in found for e in series["exemplars"]}


def _expected_orders(first: int, count: int) -> int:
    return sum(item % 3 + 1 for item in range(first, first + count))


def test_a_real_prometheus_sees_the_requests_the_orders_and_no_reset(tmp_path: Path) -> None:
    prometheus_binary()  # skips (fails in CI) before gunicorn starts
    with serving_metrics(tmp_path, SHOP_APP) as app:
        deadline = time.monotonic() + 2 * HANG_BOUND  # gunicorn, then Prometheus, start in it
        pages = serving_pages(app, deadline, 0)
        ports = sorted(pages)
        assert len(ports) == 3, (pages, app.log())
        started = time.time()
        with running_prometheus(tmp_path, ports, features=["exemplar-storage"]) as server:
            _up_targets(server, ports, deadline)
            first = get_items(app, 0, FIRST_BURST, deadline, _traceparent)
            _wait_for(server, f"sum({COUNT})", FIRST_BURST, deadline)
            assert _total(server, f"sum({COUNT})") == FIRST_BURST, app.log()
            second = _second_burst(app, _pids(first), deadline)
            requests = FIRST_BURST + len(second)
            _wait_for(server, f"sum({COUNT})", requests, deadline)

            assert _total(server, f"sum({COUNT})") == requests, app.log()
            assert _total(server, f"sum({ORDERS})") == _expected_orders(0, requests)
            assert _total(server, f'sum({BUCKET}{{le="+Inf"}})') == requests
            assert _total(server, f"sum(increase({ORDERS}[5m]))") > 0
            assert _total(server, f"sum(rate({COUNT}[5m]))") > 0
            # Every series of every counter, as Prometheus reads them across all its scrapes.
            # (one query per name: ``resets`` drops the name, so series of two would clash)
            names = server.api("label/__name__/values", **{"match[]": '{job="shop"}'})
            counters = [n for n in names if n.endswith(("_total", "_count", "_bucket"))]
            assert {ORDERS, COUNT, BUCKET, "process_cpu_time_seconds_total"} <= set(counters)
            for name in counters:
                resets = server.query(f"resets({name}[5m])")
                assert resets and [r["metric"] for r in resets if r["value"] != 0] == [], name
            # Three live targets, each its own instance and process; the requests per instance
            # are those each worker's pid answered.
            up = _up_targets(server, ports, deadline)
            assert up == sorted(f"127.0.0.1:{p}" for p in ports)
            pid_of = {
                item["metric"]["instance"]: int(item["metric"]["process_pid"])
                for item in server.query('target_info{job="shop"}')
            }
            assert len(pid_of) == 3 and len(set(pid_of.values())) == 3, pid_of
            per_instance = server.query(f"sum by (instance) ({COUNT})")
            served = {pid_of[item["metric"]["instance"]]: item["value"] for item in per_instance}
            assert served == {pid: float(n) for pid, n in _pids(first + second).items()}
            # Scraped as OpenMetrics (the unit is only in its metadata), with exemplars: each
            # names the trace of one of our requests, so a slow bucket leads to its trace.
            (metadata,) = server.api("metadata", metric=BUCKET[: -len("_bucket")])[
                BUCKET[: -len("_bucket")]
            ]
            assert (metadata["type"], metadata["unit"]) == ("histogram", "seconds")
            sent = {_traceparent(item)["traceparent"][3:35] for item in range(requests)}
            for name in (BUCKET, ORDERS):
                traces = _exemplar_trace_ids(server, name, started)
                assert traces and traces <= sent, (name, traces)
    assert "Traceback" not in app.log(), app.log()
