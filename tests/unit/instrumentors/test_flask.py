"""The Flask instrumentor in-process: names, attributes, statuses, streaming, context."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask
import pytest

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.flask import FlaskInstrumentor
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.sdk.trace.current import get_current_span
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Any]:
    """Instrument Flask with a given environment; uninstrumented after the test."""
    instrumentors: list[FlaskInstrumentor] = []

    def instrument(**environ: str) -> SpanRecorder:
        instrumentor = FlaskInstrumentor()
        instrumentor.instrument(span_recorder.provider, config_for(plugin, environ))
        instrumentors.append(instrumentor)
        return span_recorder

    yield instrument
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


def fetch(client: Any, *args: Any, **kwargs: Any) -> Any:
    """A test-client request read to the end and closed, as a WSGI server does."""
    response = client.get(*args, **kwargs)
    response.get_data()
    response.close()
    return response


def make_app() -> flask.Flask:
    app = flask.Flask("shop")

    @app.route("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, Any]:
        tracer = flask.current_app.config["TRACER"]
        with tracer.start_as_current_span("load_user"):
            pass
        return {"id": user_id, "current": f"{get_current_span().get_span_context().span_id:x}"}

    @app.route("/boom")
    def boom() -> str:
        raise ValueError("kaput")

    @app.route("/gone")
    def gone() -> str:
        flask.abort(404)

    @app.route("/stream")
    def stream() -> flask.Response:
        tracer = flask.current_app.config["TRACER"]

        def chunks() -> Iterator[str]:
            yield "a"
            with tracer.start_as_current_span("chunk"):
                yield "b"

        return flask.Response(chunks())

    return app


def test_a_request_is_one_server_span_named_from_the_rule(instrument: Any) -> None:
    recorder = instrument()
    app = make_app()
    app.config["TRACER"] = recorder.tracer
    response = fetch(app.test_client(), "/users/7?token=s&page=2", headers={"User-Agent": "t/1"})
    assert response.status_code == 200
    server = recorder.one("GET /users/<int:user_id>")
    assert server.kind is SpanKind.SERVER
    assert server.parent is None
    assert dict(server.attributes) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/users/7",
        "url.query": "token=REDACTED&page=2",
        "server.address": "localhost",
        "server.port": 80,
        "client.address": "127.0.0.1",
        "network.peer.address": "127.0.0.1",
        "user_agent.original": "t/1",
        "network.protocol.version": "1.1",
        "http.route": "/users/<int:user_id>",
        "http.response.status_code": 200,
    }
    assert server.status.is_unset
    child = recorder.one("load_user")
    assert child.parent is not None and child.parent.span_id == server.context.span_id
    assert response.json is not None
    assert response.json["current"] == f"{server.context.span_id:x}"  # current inside the view
    assert get_current_span().get_span_context().is_valid is False  # nothing leaks afterwards


def test_samplers_see_the_request_at_span_start(instrument: Any) -> None:
    from telemetry_run.sdk.trace.sampling import ALWAYS_ON, Decision, SamplingResult

    seen: list[dict[str, Any]] = []

    class Recording:
        def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
            attributes = kwargs.get("attributes", args[4] if len(args) > 4 else None)
            seen.append(dict(attributes or {}))
            if (attributes or {}).get("url.path", "").startswith("/health"):
                return SamplingResult(Decision.DROP)
            return ALWAYS_ON.should_sample(*args, **kwargs)

        def get_description(self) -> str:
            return "recording"

    recorder = SpanRecorder(sampler=Recording())  # type: ignore[arg-type]
    instrumentor = FlaskInstrumentor()
    instrumentor.instrument(recorder.provider, config_for(plugin))
    try:
        app = flask.Flask("s")
        app.add_url_rule("/health", "health", lambda: "ok")
        app.add_url_rule("/work", "work", lambda: "ok")
        client = app.test_client()
        assert fetch(client, "/health").data == b"ok"
        assert fetch(client, "/work").data == b"ok"
    finally:
        instrumentor.uninstrument()
    assert {"http.request.method", "url.path", "url.scheme", "server.address"} <= set(seen[0])
    assert [span.name for span in recorder.spans] == ["GET /work"]


def test_the_incoming_trace_is_continued_with_its_baggage(instrument: Any) -> None:
    recorder = instrument()
    app = flask.Flask("b")

    @app.route("/b")
    def b() -> str:
        from telemetry_run.sdk.baggage import get_baggage

        return str(get_baggage("tenant"))

    response = fetch(
        app.test_client(), "/b", headers={"traceparent": TRACEPARENT, "baggage": "tenant=acme"}
    )
    assert response.data == b"acme"
    span = recorder.one("GET /b")
    assert span.context.trace_id == TRACE_ID
    assert span.parent is not None and span.parent.span_id == PARENT_ID
    assert span.parent.is_remote


@pytest.mark.parametrize(
    "header", ["00-zz-b7ad6b7169203331-01", f"00-{0:032x}-{PARENT_ID:016x}-01", "ff-" + "a" * 52]
)
def test_a_malformed_traceparent_starts_a_new_trace(instrument: Any, header: str) -> None:
    recorder = instrument()
    app = make_app()
    app.config["TRACER"] = recorder.tracer
    response = fetch(app.test_client(), "/users/1", headers={"traceparent": header})
    assert response.status_code == 200
    span = recorder.one("GET /users/<int:user_id>")
    assert span.parent is None and span.context.trace_id != TRACE_ID


def test_an_unhandled_exception_is_recorded_and_the_500_is_flasks(instrument: Any) -> None:
    bare = fetch(make_app().test_client(), "/boom")
    recorder = instrument()
    response = fetch(make_app().test_client(), "/boom")
    assert (response.status_code, response.data) == (bare.status_code, bare.data)
    span = recorder.one("GET /boom")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 500
    assert span.attributes["error.type"] == "500"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "kaput"


def test_the_apps_error_handler_keeps_its_response(instrument: Any) -> None:
    recorder = instrument()
    app = make_app()
    app.register_error_handler(ValueError, lambda exc: ("handled", 503))
    response = fetch(app.test_client(), "/boom")
    assert (response.status_code, response.data) == (503, b"handled")
    span = recorder.one("GET /boom")
    assert span.attributes["http.response.status_code"] == 503
    assert span.status.status_code is StatusCode.ERROR


def test_a_propagated_exception_is_recorded_once_and_reraised(instrument: Any) -> None:
    recorder = instrument()
    app = make_app()
    app.testing = True  # PROPAGATE_EXCEPTIONS: the exception leaves wsgi_app
    with pytest.raises(ValueError, match="kaput"):
        app.test_client().get("/boom")
    span = recorder.one("GET /boom")
    assert [event.name for event in span.events] == ["exception"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"


def test_404s_unknown_url_has_no_route_and_abort_keeps_the_route(instrument: Any) -> None:
    recorder = instrument()
    client = make_app().test_client()
    assert fetch(client, "/nowhere").status_code == 404
    assert fetch(client, "/gone").status_code == 404
    unknown, aborted = recorder.spans
    assert unknown.name == "GET" and "http.route" not in unknown.attributes
    assert aborted.name == "GET /gone" and aborted.attributes["http.route"] == "/gone"
    for span in (unknown, aborted):
        assert span.status.is_unset and span.attributes["http.response.status_code"] == 404


def test_a_streamed_response_ends_the_span_when_the_stream_closes(instrument: Any) -> None:
    recorder = instrument()
    app = make_app()
    app.config["TRACER"] = recorder.tracer
    response = app.test_client().get("/stream", buffered=False)
    assert recorder.by_name("GET /stream") == []  # headers sent, body not yet
    assert b"".join(response.response) == b"ab"
    response.close()
    server = recorder.one("GET /stream")
    chunk = recorder.one("chunk")
    assert chunk.parent is not None and chunk.parent.span_id == server.context.span_id
    assert server.end_time >= chunk.end_time
    assert get_current_span().get_span_context().is_valid is False


def test_the_servers_file_wrapper_reaches_the_server_and_close_ends_the_span(
    instrument: Any, tmp_path: Any
) -> None:
    """WSGI servers send a body with sendfile only if it is their own file_wrapper object."""
    import wsgiref.util

    from werkzeug.test import EnvironBuilder

    recorder = instrument()
    app = make_app()
    served = tmp_path / "report.txt"
    served.write_bytes(b"file body")

    @app.route("/file")
    def file() -> flask.Response:
        return flask.send_file(served)

    environ = EnvironBuilder(path="/file").get_environ()
    environ["wsgi.file_wrapper"] = wsgiref.util.FileWrapper
    statuses: list[str] = []
    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert type(body) is wsgiref.util.FileWrapper  # what the server checks
    assert statuses == ["200 OK"]
    assert recorder.by_name("GET /file") == []  # not sent yet
    assert b"".join(body) == b"file body"
    body.close()
    server = recorder.one("GET /file")
    assert server.attributes["http.response.status_code"] == 200
    assert get_current_span().get_span_context().is_valid is False


def test_excluded_urls_get_no_span(instrument: Any) -> None:
    recorder = instrument(OTEL_PYTHON_FLASK_EXCLUDED_URLS="/users/1$")
    app = make_app()
    app.config["TRACER"] = recorder.tracer
    client = app.test_client()
    assert fetch(client, "/users/1").status_code == 200
    assert fetch(client, "/users/2").status_code == 200
    assert [span.name for span in recorder.spans if span.kind is SpanKind.SERVER] == [
        "GET /users/<int:user_id>"
    ]
    assert recorder.one("GET /users/<int:user_id>").attributes["url.path"] == "/users/2"


def test_allow_listed_headers_are_captured(instrument: Any) -> None:
    recorder = instrument(
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="x-request-id,authorization",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE="content-type",
    )
    app = flask.Flask("h")
    app.add_url_rule("/h", "h", lambda: "ok")
    fetch(app.test_client(), "/h", headers={"X-Request-Id": "r-1", "Authorization": "Bearer s"})
    attributes = recorder.one("GET /h").attributes
    assert attributes["http.request.header.x-request-id"] == ("r-1",)
    assert attributes["http.request.header.authorization"] == ("[REDACTED]",)
    assert attributes["http.response.header.content-type"] == ("text/html; charset=utf-8",)


def test_a_failure_of_ours_never_reaches_the_app(
    instrument: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telemetry_run.instrumentors import _http

    recorder = instrument()

    def broken(environ: Any) -> Any:
        raise RuntimeError("bug in telemetry-run")

    monkeypatch.setattr(_http, "server_environ_attributes", broken)
    response = fetch(make_app().test_client(), "/gone")
    assert response.status_code == 404
    assert [error.where for error in recorder.internal_errors] == ["flask: request start"]
    recorder.internal_errors.clear()  # expected: the span_recorder fixture fails on others


@pytest.mark.parametrize(
    ("patched", "where"),
    [
        pytest.param("ServerRequest.set_route", "flask: route", id="route"),
        pytest.param("ServerRequest.set_status_code", "http server: start_response", id="status"),
        pytest.param("ServerRequest.body", "flask: response body", id="body"),
        pytest.param("ServerRequest.end", "flask: request end", id="end"),
    ],
)
def test_a_failure_of_ours_later_in_the_request_never_reaches_the_app(
    instrument: Any, monkeypatch: pytest.MonkeyPatch, patched: str, where: str
) -> None:
    """Each step after the start is reported once under its own name; the response is the
    application's, whole."""
    from telemetry_run.instrumentors import _wsgi

    recorder = instrument()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug in telemetry-run")

    cls_name, method = patched.split(".")
    monkeypatch.setattr(getattr(_wsgi, cls_name), method, broken)
    app = flask.Flask("later")
    app.add_url_rule("/users/<int:user_id>", "user", lambda user_id: {"id": user_id})
    response = fetch(app.test_client(), "/users/7")
    assert response.status_code == 200
    assert response.get_json() == {"id": 7}
    assert get_current_span().is_recording() is False  # nothing leaked into the test's context
    assert where in {error.where for error in recorder.internal_errors}
    recorder.internal_errors.clear()  # expected: the span_recorder fixture fails on others


def test_wsgi_app_called_by_keyword_or_through_a_middleware_is_traced(instrument: Any) -> None:
    """``wsgi_app`` is a plain function in place (``Patcher.replace``): a middleware that keeps
    the bound method and a caller naming the arguments both reach the traced request."""
    recorder = instrument()
    app = make_app()
    app.config["TRACER"] = recorder.tracer
    inner = app.wsgi_app
    seen: list[str] = []

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append(environ["PATH_INFO"])
        return inner(environ=environ, start_response=start_response)

    app.wsgi_app = middleware  # type: ignore[method-assign]  # as ProxyFix and friends do
    response = fetch(app.test_client(), "/users/3")
    assert response.status_code == 200 and seen == ["/users/3"]
    server = recorder.one("GET /users/<int:user_id>")
    assert server.attributes["http.response.status_code"] == 200
    assert flask.Flask.wsgi_app.__wrapped__.__qualname__ == "Flask.wsgi_app"  # introspectable


def test_uninstrument_makes_requests_untraced(instrument: Any, span_recorder: SpanRecorder) -> None:
    instrumentor = FlaskInstrumentor()
    instrumentor.instrument(span_recorder.provider, config_for(plugin))
    original = flask.Flask.wsgi_app
    instrumentor.uninstrument()
    assert flask.Flask.wsgi_app is not original  # the patched function is gone ...
    assert not hasattr(flask.Flask.wsgi_app, "__wrapped__")  # ... and the original is back
    fetch(make_app().test_client(), "/gone")
    assert span_recorder.spans == ()


# The instrumentor contract (patch orders, double instrument, uninstrument, version range).
contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "flask"),
    exercise="tests.unit.instrumentors.exercises:flask_request",
)
