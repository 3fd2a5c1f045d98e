"""The urllib3 instrumentor against a real HTTP server on 127.0.0.1, and requests over it."""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from typing import Any

import pytest

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors import urllib3 as instrumented
from telemetry_run.instrumentors.toolkit import client_call
from telemetry_run.instrumentors.urllib3 import Urllib3Instrumentor
from telemetry_run.sdk.diagnostics import InternalError, get_diagnostics
from telemetry_run.sdk.propagation import inject
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests
from tests.unit.instrumentors.http_clients import (
    answer,
    instrumenting,
    recording_server,
    sent_traceparent,
)

urllib3 = pytest.importorskip("urllib3", reason="urllib3 is not installed (its matrix session)")


def _flaky(handler: http.server.BaseHTTPRequestHandler, seen: list[dict[str, str]]) -> bool:
    """``/flaky`` fails once (the first request of the test), then serves."""
    if handler.path.startswith("/flaky") and len(seen) == 1:
        answer(handler, 503)
        return True
    return False


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with recording_server(_flaky) as served:
        yield served


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Any]:
    yield from instrumenting(span_recorder, Urllib3Instrumentor)


def test_a_pool_manager_call_is_one_client_span_with_the_context(
    instrument: Any, server: Any
) -> None:
    recorder = instrument()
    base, seen = server
    headers = {"X-Mine": "1"}
    with (
        recorder.tracer.start_as_current_span("checkout") as parent,
        urllib3.PoolManager() as manager,
    ):
        response = manager.request("GET", f"{base}/ok?token=abc", headers=headers)
    assert response.data == b"ok"
    assert headers == {"X-Mine": "1"}  # the caller's dict is never changed
    span = recorder.one("GET")  # the manager's call, not a second one for its pool's
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "url.full": f"{base}/ok?token=REDACTED",
        "server.address": "127.0.0.1",
        "server.port": int(base.rsplit(":", 1)[1]),
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }
    assert seen[0]["traceparent"] == sent_traceparent(span)
    assert seen[0]["x-mine"] == "1"


def test_a_pool_used_directly_names_the_full_url(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, seen = server
    port = int(base.rsplit(":", 1)[1])
    headers = {"X-Mine": "1"}
    with urllib3.HTTPConnectionPool("127.0.0.1", port) as pool:
        assert pool.urlopen("GET", "/ok?q=1", None, headers).status == 200  # headers by position
        assert pool.request("GET", "/status/404").status == 404
    assert headers == {"X-Mine": "1"}
    ok, missing = sorted(recorder.by_name("GET"), key=lambda span: span.start_time)
    assert ok.attributes["url.full"] == f"{base}/ok?q=1"
    assert missing.attributes["url.full"] == f"{base}/status/404"
    assert missing.status.status_code is StatusCode.ERROR
    assert missing.attributes["error.type"] == "404"
    assert [hop["traceparent"] for hop in seen] == [sent_traceparent(ok), sent_traceparent(missing)]


def test_a_call_inside_another_http_client_call_carries_that_calls_context(
    instrument: Any, server: Any
) -> None:
    """Inside another HTTP client call (here one made with the toolkit, as a plugin would):
    no span of urllib3's own; headers handed down with the context are sent as they are, and
    headers without it get the outer call's context injected."""
    recorder = instrument()
    base, seen = server
    outer = client_call(
        recorder.tracer, "outer", attributes=lambda: {}, span_name="outer", enabled=None
    )
    with urllib3.PoolManager() as manager, outer.call() as call:
        handed_down = {"X-Mine": "1"}
        inject(handed_down, call.context)
        manager.request("GET", f"{base}/ok", headers=handed_down)
        manager.request("GET", f"{base}/ok", headers={"X-Mine": "2"})
    assert [span.name for span in recorder.spans] == ["outer"]
    expected = sent_traceparent(recorder.one("outer"))
    assert [(hop["x-mine"], hop["traceparent"]) for hop in seen] == [
        ("1", expected),
        ("2", expected),
    ]


def test_redirects_and_retries_are_one_span_with_the_resends_counted(
    instrument: Any, server: Any
) -> None:
    recorder = instrument()
    base, seen = server
    retries = urllib3.Retry(total=3, status_forcelist=[503], backoff_factor=0)
    with urllib3.PoolManager(retries=retries) as manager:
        assert manager.request("GET", f"{base}/flaky").status == 200
        assert manager.request("GET", f"{base}/redirect").status == 200
    flaky, redirected = sorted(recorder.by_name("GET"), key=lambda span: span.start_time)
    assert flaky.attributes["http.request.resend_count"] == 1
    assert flaky.attributes["http.response.status_code"] == 200
    assert redirected.attributes["url.full"] == f"{base}/redirect"
    assert redirected.attributes["http.request.resend_count"] == 1
    assert [hop["traceparent"] for hop in seen] == [sent_traceparent(flaky)] * 2 + [
        sent_traceparent(redirected)
    ] * 2


def test_requests_over_urllib3_is_one_client_span(instrument: Any, server: Any) -> None:
    """The one-CLIENT-span rule: requests' span is the call; urllib3 under it only carries it."""
    requests = pytest.importorskip("requests", reason="requests is not installed")
    from telemetry_run.instrumentors.requests import RequestsInstrumentor

    recorder = instrument(RequestsInstrumentor())
    base, seen = server
    assert requests.get(f"{base}/redirect", timeout=10).status_code == 200
    assert requests.get(f"{base}/status/500", timeout=10).status_code == 500
    redirected, failed = sorted(recorder.spans, key=lambda span: span.start_time)
    assert [span.instrumentation_scope.name for span in (redirected, failed)] == [
        "telemetry_run.instrumentors.requests"
    ] * 2
    assert redirected.attributes["http.request.resend_count"] == 1
    assert [hop["traceparent"] for hop in seen] == [sent_traceparent(redirected)] * 2 + [
        sent_traceparent(failed)
    ]


def test_a_connection_error_is_recorded_and_reraised_unchanged(instrument: Any) -> None:
    recorder = instrument()
    with urllib3.PoolManager() as manager, pytest.raises(urllib3.exceptions.MaxRetryError):
        manager.request("GET", "http://127.0.0.1:9/?api_key=s3cr3t", retries=1)
    span = recorder.one("GET")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "urllib3.exceptions.MaxRetryError"
    assert span.attributes["url.full"] == "http://127.0.0.1:9/?api_key=REDACTED"
    [event] = span.events
    assert "s3cr3t" not in str(event.attributes["exception.message"])


def test_a_bug_of_ours_costs_the_span_never_the_call(monkeypatch: Any, server: Any) -> None:
    """Reported through the diagnostics, the call unchanged (not the span_recorder fixture: it
    fails on any internal error, and here they are the point)."""
    errors: list[InternalError] = []
    monkeypatch.setattr(get_diagnostics(), "on_internal_error", errors.append)
    base, _ = server
    recorder = SpanRecorder()
    instrumentor = Urllib3Instrumentor()
    instrumentor.instrument(recorder.provider, config_for(plugin, {}))

    def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("instrumentor bug")

    try:
        with monkeypatch.context() as patched:
            patched.setattr(instrumentor.site, "attributes", broken)
            assert urllib3.PoolManager().request("GET", f"{base}/ok").data == b"ok"
        assert recorder.spans == ()  # the span could not start: the call went on without it
        monkeypatch.setattr(instrumented, "_response", broken)
        assert urllib3.PoolManager().request("GET", f"{base}/ok").data == b"ok"
    finally:
        instrumentor.uninstrument()
        recorder.shutdown()
    # The pool's call under the manager's tries again (the outer one made no span).
    assert [error.where for error in errors] == [
        "urllib3: call start",
        "urllib3: call start",
        "urllib3: response",
    ]
    [span] = recorder.spans  # the response step failed: the span still ended, with what it had
    assert span.attributes["url.full"] == f"{base}/ok"


# The instrumentor contract (patch orders, double instrument, uninstrument, version range).
contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "urllib3"),
    exercise="tests.unit.instrumentors.exercises:urllib3_call",
)
