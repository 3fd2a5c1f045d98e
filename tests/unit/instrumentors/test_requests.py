"""The requests instrumentor against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import requests.adapters

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.requests import RequestsInstrumentor
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder
from telemetry_run.testing.contract import contract_tests
from tests.unit.instrumentors.http_clients import instrumenting, recording_server, sent_traceparent


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with recording_server() as served:
        yield served


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Any]:
    yield from instrumenting(span_recorder, RequestsInstrumentor)


def test_a_call_is_one_client_span_and_carries_the_context(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, seen = server
    headers = {"X-Mine": "1"}
    with recorder.tracer.start_as_current_span("checkout") as parent:
        response = requests.get(f"{base}/ok?token=abc", headers=headers, timeout=10)
    assert response.text == "ok"
    assert headers == {"X-Mine": "1"}  # the caller's dict is never changed
    span = recorder.one("GET")
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    port = int(base.rsplit(":", 1)[1])
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "url.full": f"{base}/ok?token=REDACTED",
        "server.address": "127.0.0.1",
        "server.port": port,
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }
    assert span.status.is_unset
    assert seen[0]["traceparent"] == sent_traceparent(span)


def test_a_prepared_request_sent_by_hand_is_not_changed(instrument: Any, server: Any) -> None:
    instrument()
    base, seen = server
    prepared = requests.Request("GET", f"{base}/ok").prepare()
    with requests.Session() as session:
        assert session.send(prepared, timeout=10).status_code == 200
    assert "traceparent" not in prepared.headers
    assert "traceparent" in seen[0]


class _Recording(requests.adapters.BaseAdapter):
    """A transport adapter answering 200 and keeping each request object it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Any] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response.request, response.url = 200, request, request.url
        return response

    def close(self) -> None:
        return None


def test_what_is_sent_is_a_copy_only_when_there_is_context_to_carry(instrument: Any) -> None:
    """Traced: the adapter gets a copy carrying the context, the caller's request unchanged and
    handed back. Suppressed: the caller's request itself. Nested in another client's call: no
    span of ours, the outer call's context carried."""
    from telemetry_run.instrumentors._http_client import client_site
    from telemetry_run.sdk.context import suppress_instrumentation

    recorder = instrument()
    adapter = _Recording()
    with requests.Session() as session:
        session.mount("http://mock/", adapter)
        prepared = requests.Request("GET", "http://mock/traced", headers={"X-Mine": "1"}).prepare()
        assert session.send(prepared).request is prepared
        [sent] = adapter.sent
        assert sent is not prepared and sent.headers["x-mine"] == "1"
        assert sent.headers["traceparent"] == sent_traceparent(recorder.one("GET"))
        assert "traceparent" not in prepared.headers
        with suppress_instrumentation():
            prepared = requests.Request("GET", "http://mock/suppressed").prepare()
            session.send(prepared)
        assert adapter.sent[-1] is prepared and "traceparent" not in prepared.headers
        outer = client_site(recorder.tracer, "outer", None)
        with outer.call("GET", "http://mock/outer", {}) as call:  # another client's call
            prepared = requests.Request("GET", "http://mock/nested").prepare()
            assert session.send(prepared).request is prepared
        assert adapter.sent[-1] is not prepared  # no span of ours, the outer context carried
        assert adapter.sent[-1].headers["traceparent"] == sent_traceparent(call.span)
    assert [span.attributes["url.full"] for span in recorder.spans] == [
        "http://mock/traced",
        "http://mock/outer",
    ]


def test_the_app_sees_the_request_it_made(instrument: Any, server: Any) -> None:
    """``response.request`` (and the history's, and an error's) is the caller's object."""
    instrument()
    base, seen = server
    prepared = requests.Request("GET", f"{base}/redirect").prepare()
    with requests.Session() as session:
        response = session.send(prepared, timeout=10)
        assert response.request is not prepared  # the hop's own request, made by requests
        assert response.history[0].request is prepared
        assert "traceparent" not in response.history[0].request.headers
        refused = requests.Request("GET", "http://127.0.0.1:9/").prepare()
        with pytest.raises(requests.ConnectionError) as caught:
            session.send(refused, timeout=5)
        assert caught.value.request is refused
        direct = session.send(requests.Request("GET", f"{base}/ok").prepare(), timeout=10)
    assert "traceparent" not in direct.request.headers
    assert all("traceparent" in headers for headers in seen)


def test_a_connection_error_message_keeps_no_secret(instrument: Any) -> None:
    """urllib3 writes the URL, query and all, into the error requests raises."""
    recorder = instrument()
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get("http://bob:hunter2@127.0.0.1:9/x?access_token=s3cr3t", timeout=5)
    assert "s3cr3t" in str(caught.value)  # the app's exception is its own, unchanged
    span = recorder.one("GET")
    [event] = span.events
    recorded = [str(value) for value in event.attributes.values()]
    recorded += [str(value) for value in span.attributes.values()]
    recorded.append(str(span.status.description))
    for text in recorded:
        assert "s3cr3t" not in text and "hunter2" not in text, text
    assert "access_token=REDACTED" in str(event.attributes["exception.message"])


def test_credentials_never_reach_url_full(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, _ = server
    requests.get(base.replace("http://", "http://alice:pw@") + "/ok", timeout=10)
    assert recorder.one("GET").attributes["url.full"].startswith("http://REDACTED:REDACTED@")


def test_a_connection_error_is_recorded_and_reraised_unchanged(instrument: Any) -> None:
    recorder = instrument()
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get("http://127.0.0.1:9/", timeout=5)  # discard port: refused
    span = recorder.one("GET")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "requests.exceptions.ConnectionError"
    [event] = span.events
    assert event.attributes["exception.type"] == "requests.exceptions.ConnectionError"
    assert caught.value.request is not None  # requests' own exception, as raised


def test_redirects_are_one_span_with_the_hops_counted(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, seen = server
    response = requests.get(f"{base}/redirect", timeout=10)
    assert response.status_code == 200 and len(response.history) == 1
    span = recorder.one("GET")
    assert span.attributes["url.full"] == f"{base}/redirect"
    assert span.attributes["http.request.resend_count"] == 1
    assert span.attributes["http.response.status_code"] == 200
    # Both hops carry the one span's context.
    assert [hop["traceparent"] for hop in seen] == [seen[0]["traceparent"]] * 2


# The instrumentor contract (patch orders, double instrument, uninstrument, version range).
contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "requests"),
    exercise="tests.unit.instrumentors.exercises:requests_call",
)
