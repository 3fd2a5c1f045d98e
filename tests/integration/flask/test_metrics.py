"""``http.server.request.duration`` from a real Flask server under telemetry-run, exported over
OTLP (the default ``OTEL_METRICS_EXPORTER``) to the real receiver at the server's exit."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import attributes, otlp_env, served
from tests.integration.flask.test_flask import get

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("flask")

APP = """
    import flask

    app = flask.Flask(__name__)

    @app.route("/items/<int:item_id>")
    def item(item_id):
        return str(item_id)

    @app.route("/boom")
    def boom():
        raise ValueError("kaput")
"""

METRIC = "http.server.request.duration"


def _serve(receiver: OTLPReceiver, tmp_path: Path, sampler: str) -> dict[str, Any]:
    """Four item requests and one failing one: the duration's points by route, as exported
    once they count all five (a request is measured when its body is closed, which the
    server may do after the client read the response)."""
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    env = otlp_env(
        receiver,
        PYTHONPATH=str(tmp_path),
        OTEL_TRACES_SAMPLER=sampler,
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_METRIC_EXPORT_INTERVAL="100",
    )
    command = [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)]
    with served(command, port=port, env=env, cwd=tmp_path) as app:
        for item_id in range(4):
            assert get(app.url(f"/items/{item_id}?q=s3cret")) == (200, str(item_id).encode())
        assert get(app.url("/boom"))[0] == 500
        deadline = time.monotonic() + 15  # only catches a hang
        while True:
            points = _points(receiver)
            if sum(p.count for p in points.values()) >= 5:
                break
            assert time.monotonic() < deadline, f"{points}\n{app.log()}"
            time.sleep(0.05)
        assert app.stop() in (0, -15), app.log()
    return points


def _points(receiver: OTLPReceiver) -> dict[str, Any]:
    """The duration's data points by route in the latest export (cumulative) that has it."""
    metrics = [m for m in receiver.metrics() if m.name == METRIC]
    if not metrics:
        return {}
    metric = metrics[-1]
    assert metric.unit == "s"
    return {attributes(p).get("http.route"): p for p in metric.histogram.data_points}


def test_requests_arrive_as_the_duration_histogram_with_exemplars_of_exported_traces(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    points = _serve(otlp_receiver, tmp_path, "parentbased_always_on")
    assert points.keys() == {"/items/<int:item_id>", "/boom"}
    items, boom = points["/items/<int:item_id>"], points["/boom"]
    assert items.count == 4
    assert attributes(items) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "http.route": "/items/<int:item_id>",
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }
    assert boom.count == 1
    assert attributes(boom)["http.response.status_code"] == 500
    assert attributes(boom)["error.type"] == "500"
    assert list(items.explicit_bounds)[:3] == [0.005, 0.01, 0.025]  # the conventions' advice
    spans = {(s.trace_id, s.span_id) for s in otlp_receiver.wait_for_spans(5)}
    exemplars = [(e.trace_id, e.span_id) for p in points.values() for e in p.exemplars]
    assert exemplars, "a sampled request's measurement links to its trace"
    assert set(exemplars) <= spans


def test_sampled_out_requests_are_still_counted(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    points = _serve(otlp_receiver, tmp_path, "always_off")
    assert (points["/items/<int:item_id>"].count, points["/boom"].count) == (4, 1)
    assert all(not p.exemplars for p in points.values())
    assert otlp_receiver.spans() == []
