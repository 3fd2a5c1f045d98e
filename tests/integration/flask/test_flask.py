"""A Flask app as a real server under telemetry-run (werkzeug and gunicorn), spans over OTLP."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import attributes, otlp_env, script, served

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("flask")

APP = """
import flask
from telemetry_run import trace

app = flask.Flask(__name__)
tracer = trace.get_tracer("shop")


@app.route("/users/<int:user_id>")
def user(user_id):
    with tracer.start_as_current_span("load_user"):
        return {"id": user_id}


@app.route("/boom")
def boom():
    raise ValueError("kaput")


@app.route("/stream")
def stream():
    def chunks():
        for i in range(3):
            yield f"{i}\\n"
    return flask.Response(chunks(), mimetype="text/plain")


@app.route("/health")
def health():
    return "ok"
"""

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
SERVER = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER
ERROR = 2  # Status.STATUS_CODE_ERROR


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Connection": "close", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def commands(port: int) -> dict[str, list[str]]:
    return {
        "werkzeug": [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)],
        "gunicorn": [script("gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "app:app"],
    }


@pytest.mark.parametrize("server", ["werkzeug", "gunicorn"])
def test_requests_become_server_spans_at_the_receiver(
    otlp_receiver: OTLPReceiver, tmp_path: Path, server: str
) -> None:
    if server == "gunicorn" and importlib.util.find_spec("gunicorn") is None:
        pytest.skip("gunicorn is not installed")
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    env = otlp_env(
        otlp_receiver,
        OTEL_SERVICE_NAME="shop",
        OTEL_PYTHON_FLASK_EXCLUDED_URLS="/health",
        PYTHONPATH=str(tmp_path),
    )
    with served(commands(port)[server], port=port, env=env, cwd=tmp_path) as app:
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        assert get(app.url("/users/42?token=t"), {"traceparent": traceparent}) == (
            200,
            b'{"id":42}\n',
        )
        assert get(app.url("/boom"))[0] == 500
        assert get(app.url("/nowhere"))[0] == 404
        assert get(app.url("/stream")) == (200, b"0\n1\n2\n")
        assert get(app.url("/health")) == (200, b"ok")
        assert get(app.url("/users/1"), {"traceparent": "00-garbage-01"})[0] == 200
        spans = otlp_receiver.wait_for_spans(7, timeout=20)
        assert app.stop() in (0, -15)
    by_name: dict[str, list[object]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert sorted(by_name) == [
        "GET",
        "GET /boom",
        "GET /stream",
        "GET /users/<int:user_id>",
        "load_user",
    ]
    continued, fresh = sorted(
        by_name["GET /users/<int:user_id>"], key=lambda s: s.trace_id.hex() != TRACE_ID
    )
    assert continued.trace_id.hex() == TRACE_ID and continued.parent_span_id.hex() == PARENT_ID
    assert fresh.trace_id.hex() != TRACE_ID and fresh.parent_span_id == b""
    assert continued.kind == SERVER
    attrs = attributes(continued)
    assert attrs["http.route"] == "/users/<int:user_id>"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/users/42"
    assert attrs["url.query"] == "token=REDACTED"
    assert attrs["server.port"] == port
    assert "http.method" not in attrs and "http.status_code" not in attrs  # stable names only
    [load_user] = [s for s in by_name["load_user"] if s.trace_id.hex() == TRACE_ID]
    assert load_user.parent_span_id == continued.span_id
    [boom] = by_name["GET /boom"]
    assert boom.status.code == ERROR
    assert attributes(boom)["http.response.status_code"] == 500
    assert [event.name for event in boom.events] == ["exception"]
    [missing] = by_name["GET"]
    assert attributes(missing)["http.response.status_code"] == 404 and missing.status.code == 0
    [stream] = by_name["GET /stream"]
    assert stream.end_time_unix_nano > stream.start_time_unix_nano
    resource = otlp_receiver.requests[0].request.resource_spans[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == "shop"
