"""Secrets never leave the process, and our wrappers change nothing the app sees: a Flask app
under ``telemetry-run`` (gunicorn) whose requests and errors carry credentials, exported to
the real OTLP receiver.

One server run serves every check (module fixture: two cores are shared); each leak is its
own test, with its own secret string, looked for in the received protobuf bytes and in
everything the process wrote. The app silences its own loggers (Flask's "Exception on ..."
is the app's, not ours), so what is left on stderr is telemetry-run's, at debug level.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import attributes, otlp_env, script, served
from tests.integration.conftest import clean_env, launch

pytest.importorskip("flask")
pytest.importorskip("requests")

APP = """
import logging
import socket

import flask
import requests

logging.getLogger("app").disabled = True  # the app's own error log: not what we check

app = flask.Flask("app")
SENT = []
_sendfile = socket.socket.sendfile


def counting_sendfile(self, file, offset=0, count=None):
    SENT.append(count)
    return _sendfile(self, file, offset, count)


socket.socket.sendfile = counting_sendfile


@app.route("/refused")
def refused():
    # urllib3 writes the path and query into the ConnectionError's message.
    requests.get("http://127.0.0.1:9/x?access_token=conn-s3cr3t", timeout=5)


@app.route("/status")
def status():
    # raise_for_status writes the full URL into the HTTPError's message.
    url = flask.request.host_url + "missing?X-Amz-Signature=http-s3cr3t"
    requests.get(url, timeout=5).raise_for_status()


@app.route("/userinfo")
def userinfo():
    requests.get("http://bob:pw@userinfo-s3cr3t@127.0.0.1:9/", timeout=5)


@app.route("/boom")
def boom():
    raise ValueError("upstream https://u:app-s3cr3t@h.example/?token=app-s3cr3t failed")


@app.route("/echo")
def echo():
    return "echo"


@app.route("/health")
def health():
    return "ok"


@app.route("/file")
def file():
    return flask.send_file(__file__, mimetype="text/plain")


@app.route("/sent")
def sent():
    return {"sendfile_calls": len(SENT)}


@app.route("/identity")
def identity():
    prepared = requests.Request("GET", flask.request.host_url + "echo").prepare()
    with requests.Session() as session:
        response = session.send(prepared, timeout=5)
    return {
        "same": response.request is prepared,
        "headers_untouched": "traceparent" not in prepared.headers,
    }


class Unprintable:
    def __str__(self):
        raise RuntimeError("a middleware's object, not a header")


class StoresObjects:
    # A WSGI middleware that keeps its own objects under CGI-like names.

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        environ["HTTP_X_USER"] = Unprintable()
        environ["HTTP_X_ROLES"] = ["admin"]
        return self.wsgi_app(environ, start_response)


app.wsgi_app = StoresObjects(app.wsgi_app)
"""

SECRETS = {
    "connection error message": "conn-s3cr3t",
    "http error message": "http-s3cr3t",
    "userinfo split at the last @": "userinfo-s3cr3t",
    "application exception": "app-s3cr3t",
    "percent-encoded key in the query": "query-s3cr3t",
    "key added by TELEMETRY_RUN_HTTP_SENSITIVE_QUERY_KEYS": "added-s3cr3t",
}


@dataclass
class Run:
    exported: bytes  # every export request the receiver got, serialized again
    output: str  # everything the server process wrote
    spans: list[Any]
    sendfile_calls: int
    file_body: bytes
    identity: dict[str, bool]


def _get(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def attributes_of_event(event: Any) -> dict[str, Any]:
    return {kv.key: kv.value.string_value for kv in event.attributes}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    if importlib.util.find_spec("gunicorn") is None:
        pytest.skip("gunicorn is not installed")
    from telemetry_run.testing.otlp import OTLPReceiver

    tmp_path = tmp_path_factory.mktemp("secrets")
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    with OTLPReceiver() as receiver:
        env = otlp_env(
            receiver,
            OTEL_SERVICE_NAME="secrets",
            OTEL_PYTHON_EXCLUDED_URLS="/health$",
            TELEMETRY_RUN_DEBUG="true",
            TELEMETRY_RUN_HTTP_SENSITIVE_QUERY_KEYS="Session_ID",
            OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="x-user,x-roles,x-request-id",
            PYTHONPATH=str(tmp_path),
        )
        command = [script("gunicorn"), "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{port}"]
        with served([*command, "app:app"], port=port, env=env, cwd=tmp_path) as app:
            assert _get(app.url("/refused"))[0] == 500
            assert _get(app.url("/status"))[0] == 500
            assert _get(app.url("/userinfo"))[0] == 500
            assert _get(app.url("/boom"))[0] == 500
            assert _get(app.url("/echo?API%5FKEY=query-s3cr3t&page=1")) == (200, b"echo")
            assert _get(app.url("/echo?next=/health")) == (200, b"echo")
            assert _get(app.url("/echo?session_id=added-s3cr3t")) == (200, b"echo")
            assert _get(app.url("/health?next=/login")) == (200, b"ok")
            status, file_body = _get(app.url("/file"))
            assert status == 200
            status, body = _get(app.url("/sent"))
            sendfile_calls = int(json.loads(body)["sendfile_calls"])
            status, body = _get(app.url("/identity"))
            assert status == 200
            identity = json.loads(body)
            # refused, status (+ its /missing), userinfo, boom, 3 echo, file, sent, identity
            # (+ its /echo): 12 SERVER spans and 4 CLIENT spans; /health gets none.
            # Stopped first: its exit flush delivers a span still queued, whatever the load.
            assert app.stop() in (0, -15)
            output = app.log()
            try:
                spans = receiver.wait_for_spans(16, timeout=30)
            except AssertionError as missing:  # say which span, and what the server printed
                names = sorted(f"{span.kind} {span.name}" for span in receiver.spans())
                pytest.fail(f"{missing}: {names}\n{output}")
        exported = b"".join(r.request.SerializeToString() for r in receiver.requests)
    return Run(exported, output, spans, sendfile_calls, file_body, identity)


@pytest.mark.parametrize("leak", sorted(SECRETS))
def test_the_secret_reaches_neither_the_collector_nor_stderr(run: Run, leak: str) -> None:
    secret = SECRETS[leak].encode()
    assert secret not in run.exported, leak
    assert SECRETS[leak] not in run.output, run.output
    # The telemetry itself is there, scrubbed: the secret is gone, not the record.
    assert b"REDACTED" in run.exported


def test_exceptions_are_recorded_with_their_urls_scrubbed(run: Run) -> None:
    messages = [
        str(attributes_of_event(event)["exception.message"])
        for span in run.spans
        for event in span.events
        if event.name == "exception"
    ]
    assert any("url: /x?access_token=REDACTED" in m for m in messages), (
        messages
    )  # urllib3's "Max retries exceeded with url: ..."
    assert any("missing?X-Amz-Signature=REDACTED" in m for m in messages), messages
    assert any("https://REDACTED:REDACTED@h.example/?token=REDACTED" in m for m in messages)
    statuses = [span.status.message for span in run.spans if span.status.message]
    assert statuses and all("s3cr3t" not in status for status in statuses)


def test_url_attributes_are_scrubbed(run: Run) -> None:
    by_target = {
        str(attributes(span).get("url.full") or attributes(span).get("url.query")): span
        for span in run.spans
    }
    assert "http://REDACTED:REDACTED@127.0.0.1:9/" in by_target
    assert "API%5FKEY=REDACTED&page=1" in by_target
    assert "session_id=REDACTED" in by_target  # the user's key, in the app's process


def test_a_query_cannot_switch_tracing_off(run: Run) -> None:
    queries = [attributes(span).get("url.query") for span in run.spans]
    assert "next=/health" in queries  # /echo?next=/health is traced
    paths = [attributes(span).get("url.path") for span in run.spans]
    assert "/health" not in paths  # /health itself is excluded, whatever its query


def test_the_servers_file_wrapper_still_sends_with_sendfile(run: Run) -> None:
    assert run.file_body.startswith(b"\nimport logging")
    assert run.sendfile_calls == 1  # gunicorn recognised its own wsgi.file_wrapper
    [file_span] = [s for s in run.spans if s.name == "GET /file"]
    assert attributes(file_span)["http.response.status_code"] == 200


def test_list_hides_credentials_and_query_secrets_of_endpoints() -> None:
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT="https://bob:pw@list-s3cr3t@collector.example:4318/"
        "?api_key=list-s3cr3t",
    )
    result = launch(["--list"], env)
    assert result.returncode == 0, result.stderr
    assert "list-s3cr3t" not in result.stdout + result.stderr
    assert "collector.example:4318/?api_key=REDACTED" in result.stdout


def test_the_app_gets_back_the_request_object_it_sent(run: Run) -> None:
    assert run.identity == {"same": True, "headers_untouched": True}


def test_objects_a_middleware_stores_in_the_environ_are_not_headers(run: Run) -> None:
    for span in run.spans:
        names = attributes(span)
        assert "http.request.header.x-user" not in names
        assert "http.request.header.x-roles" not in names
    assert "internal error" not in run.output.lower(), run.output  # nothing of ours raised
