"""The httpx instrumentor against a real HTTP server on 127.0.0.1, sync and async clients."""

from __future__ import annotations

import asyncio
import http.server
from collections.abc import Iterator
from typing import Any

import pytest

from telemetry_run.instrumentors import httpx as instrumented
from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.httpx import HttpxInstrumentor
from telemetry_run.sdk.diagnostics import InternalError, get_diagnostics
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests
from tests.unit.instrumentors.http_clients import instrumenting, recording_server, sent_traceparent

httpx = pytest.importorskip("httpx", reason="httpx is not installed (the httpx matrix session)")


def _cut(handler: http.server.BaseHTTPRequestHandler, seen: list[dict[str, str]]) -> bool:
    """``/cut`` promises more body than it sends, then hangs up."""
    if not handler.path.startswith("/cut"):
        return False
    handler.send_response(200)
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    handler.wfile.write(b"part")
    handler.wfile.flush()
    handler.close_connection = True
    return True


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with recording_server(_cut) as served:
        yield served


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Any]:
    yield from instrumenting(span_recorder, HttpxInstrumentor)


def test_a_call_is_one_client_span_and_carries_the_context(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, seen = server
    with recorder.tracer.start_as_current_span("checkout") as parent:
        response = httpx.get(f"{base}/ok?token=abc", headers={"X-Mine": "1"}, timeout=10)
    assert response.text == "ok"
    span = recorder.one("GET")
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
    assert span.status.is_unset
    assert seen[0]["traceparent"] == sent_traceparent(span)
    assert seen[0]["x-mine"] == "1"


def test_the_async_client_is_traced_in_the_callers_trace(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, seen = server

    async def main() -> list[int]:
        async with httpx.AsyncClient(timeout=10) as client:
            with recorder.tracer.start_as_current_span("job"):
                responses = await asyncio.gather(client.get(f"{base}/ok"), client.get(base))
        return [response.status_code for response in responses]

    assert asyncio.run(main()) == [200, 200]
    job = recorder.one("job")
    calls = recorder.by_name("GET")
    assert len(calls) == 2
    assert all(
        span.parent is not None and span.parent.span_id == job.context.span_id for span in calls
    )
    assert sorted(headers["traceparent"] for headers in seen) == sorted(
        map(sent_traceparent, calls)
    )


def test_a_request_sent_by_hand_is_not_changed(instrument: Any, server: Any) -> None:
    instrument()
    base, seen = server
    with httpx.Client(timeout=10) as client:
        request = client.build_request("GET", f"{base}/redirect")
        response = client.send(request, follow_redirects=True)
        assert response.history[0].request is request  # the app sees the request it made
        assert "traceparent" not in request.headers
        refused = client.build_request("GET", "http://127.0.0.1:9/")
        with pytest.raises(httpx.ConnectError) as caught:
            client.send(refused)
        assert caught.value.request is refused
    assert all("traceparent" in headers for headers in seen)


def test_redirects_are_one_span_with_the_hops_counted(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, seen = server
    response = httpx.get(f"{base}/redirect", follow_redirects=True, timeout=10)
    assert response.status_code == 200 and len(response.history) == 1
    span = recorder.one("GET")
    assert span.attributes["url.full"] == f"{base}/redirect"
    assert span.attributes["http.request.resend_count"] == 1
    assert span.attributes["http.response.status_code"] == 200
    assert [hop["traceparent"] for hop in seen] == [sent_traceparent(span)] * 2


def test_a_streamed_response_ends_its_span_when_closed(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, _ = server
    with httpx.Client(timeout=10) as client:
        with client.stream("GET", f"{base}/ok") as response:
            assert response.status_code == 200
            assert recorder.spans == ()  # the body is still to come
            assert response.read() == b"ok"
        assert recorder.one("GET").attributes["http.response.status_code"] == 200
        response = client.send(client.build_request("GET", f"{base}/ok"), stream=True)
        assert len(recorder.spans) == 1
        response.close()  # closed unread
    assert len(recorder.by_name("GET")) == 2


def test_an_async_streamed_response_ends_its_span_when_closed(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, _ = server

    async def main() -> tuple[int, bytes]:
        client = httpx.AsyncClient(timeout=10)
        async with client, client.stream("GET", f"{base}/ok") as response:
            ended_before = len(recorder.spans)
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
        return ended_before, body

    assert asyncio.run(main()) == (0, b"ok")
    assert recorder.one("GET").attributes["http.response.status_code"] == 200


def test_a_mock_transports_streamed_responses_read_and_close(instrument: Any) -> None:
    """A transport's own body (``httpx.ByteStream``, sync and async at once) behind a streamed
    response: read and closed as without us, by the sync and the async client."""
    recorder = instrument()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"mocked"))
    with httpx.Client(transport=transport) as client:
        response = client.send(client.build_request("GET", "http://mock/x"), stream=True)
        assert response.read() == b"mocked"
        response.close()

    async def main() -> bytes:
        async with httpx.AsyncClient(transport=transport) as client:
            request = client.build_request("GET", "http://mock/y")
            response = await client.send(request, stream=True)
            body = await response.aread()
            await response.aclose()
            return body

    assert asyncio.run(main()) == b"mocked"
    assert sorted(span.attributes["url.full"] for span in recorder.by_name("GET")) == [
        "http://mock/x",
        "http://mock/y",
    ]


def test_a_body_cut_short_is_an_error_of_the_streamed_span(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, _ = server
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{base}/cut") as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        response.read()
    span = recorder.one("GET")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 200
    [event] = span.events
    assert event.attributes["exception.type"] == "httpx.RemoteProtocolError"


def test_a_connection_error_is_recorded_and_reraised_unchanged(instrument: Any) -> None:
    recorder = instrument()
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://127.0.0.1:9/?api_key=s3cr3t", timeout=5)  # discard port: refused
    span = recorder.one("GET")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "httpx.ConnectError"
    assert span.attributes["url.full"] == "http://127.0.0.1:9/?api_key=REDACTED"


def test_urls_are_remembered_by_value_and_never_mixed_up(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request's attributes are its own: the URL texts and attributes the instrumentor
    remembers (bounded) give the same answer as the first time, whatever came in between, and
    what one call learnt (an error status, what an end hook added to ``call.attributes``)
    never reaches the next call of the same URL."""
    from telemetry_run.instrumentors import toolkit

    recorder = span_recorder
    instrumentor = HttpxInstrumentor()
    instrumentor.instrument(recorder.provider, config_for(plugin, {}))
    hooked: list[bool] = []

    def hook(call: Any) -> None:  # a third party's end hook, enriching the call's attributes
        hooked.append("hooked" in call.attributes)
        call.attributes["hooked"] = True

    monkeypatch.setattr(toolkit, "CALL_END_HOOKS", [*toolkit.CALL_END_HOOKS, hook])

    def answer(request: Any) -> Any:
        return httpx.Response(500 if request.url.path == "/fails" else 200)

    long_path = "/" + "p" * 600
    urls = [f"http://h{index % 7}.example:{8000 + index}/items/{index}" for index in range(300)]
    urls += [f"http://mock{long_path}?token=t", "https://user:pw@mock/login?api_key=c"]
    asked = []
    try:
        with httpx.Client(transport=httpx.MockTransport(answer)) as client:
            for method in ("GET", "PATCH", "get"):
                for url in (*urls, *reversed(urls)):
                    client.request(method, url)
                    asked.append((method.upper(), url))
            for path in ("/fails", "/fine"):
                client.get(f"http://mock{path}")
            # Asked for last, twice: whatever is remembered by now would still be there.
            last = (urls[-1], "http://mock/ok?api_key=c", "http://mock/ok?page=2")
            for url in (*last, *last):
                client.get(url)
        remembered = instrumentor.site.attributes.remembered  # type: ignore[attr-defined]
    finally:
        instrumentor.uninstrument()
    spans = recorder.spans
    assert len(spans) == len(asked) + 8
    for span, (method, url) in zip(spans, asked, strict=False):
        parsed = httpx.URL(url)
        assert span.attributes["http.request.method"] == method
        assert span.attributes["server.address"] == parsed.host
        assert span.attributes["server.port"] == (
            parsed.port or {"http": 80, "https": 443}[parsed.scheme]
        )
        assert span.attributes["url.full"] == (
            url.replace("user:pw@", "REDACTED:REDACTED@")
            .replace("token=t", "token=REDACTED")
            .replace("api_key=c", "api_key=REDACTED")
        )
        assert "error.type" not in span.attributes
    assert hooked == [False] * len(spans)
    # What is remembered holds no secret: URLs with userinfo or a redacted value are not kept.
    kept = [*instrumented._url_texts.values(), *map(repr, instrumented._url_texts)]
    kept += [repr(item) for item in remembered.items()]
    assert "page=2" in repr(kept)  # a URL without a secret is remembered
    assert not [text for text in kept if "pw" in text or "api_key=c" in text]
    failed, fine = spans[-8:-6]
    assert failed.attributes["error.type"] == "500"
    assert (
        "error.type" not in fine.attributes and fine.attributes["http.response.status_code"] == 200
    )


def test_what_is_sent_is_a_copy_only_when_there_is_context_to_carry(instrument: Any) -> None:
    """Traced: the transport gets a copy carrying the context, the caller's request unchanged.
    Suppressed, or with no propagator: the caller's request itself. Nested in another client's
    call: no span of ours, the outer call's context carried."""
    from telemetry_run.instrumentors._http_client import client_site
    from telemetry_run.sdk.context import suppress_instrumentation
    from telemetry_run.sdk.propagation import CompositePropagator, _textmap, set_global_textmap

    recorder = instrument()
    sent: list[Any] = []

    def answer(request: Any) -> Any:
        sent.append(request)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        request = client.build_request("GET", "http://mock/traced")
        assert client.send(request).request is request
        assert sent[-1] is not request and "traceparent" in sent[-1].headers
        assert "traceparent" not in request.headers
        assert sent[-1].headers["traceparent"] == sent_traceparent(recorder.one("GET"))

        with suppress_instrumentation():
            request = client.build_request("GET", "http://mock/suppressed")
            client.send(request)
        assert sent[-1] is request and "traceparent" not in request.headers

        previous = _textmap._global
        set_global_textmap(CompositePropagator([]))
        try:
            request = client.build_request("GET", "http://mock/no-propagator")
            client.send(request)
        finally:
            set_global_textmap(previous)
        assert sent[-1] is request and "traceparent" not in request.headers
        assert recorder.by_name("GET")[-1].attributes["url.full"] == "http://mock/no-propagator"

        outer = client_site(recorder.tracer, "outer", None)
        with outer.call("GET", "http://mock/outer", {}) as call:
            request = client.build_request("GET", "http://mock/nested")
            assert client.send(request).request is request
        assert sent[-1] is not request
        assert sent[-1].headers["traceparent"] == sent_traceparent(call.span)
    assert [span.attributes["url.full"] for span in recorder.spans] == [
        "http://mock/traced",
        "http://mock/no-propagator",
        "http://mock/outer",
    ]


def test_a_bug_of_ours_costs_the_span_never_the_call(monkeypatch: Any, server: Any) -> None:
    """Reported through the diagnostics, the call unchanged (not the span_recorder fixture: it
    fails on any internal error, and here they are the point)."""
    errors: list[InternalError] = []
    monkeypatch.setattr(get_diagnostics(), "on_internal_error", errors.append)
    base, _ = server
    recorder = SpanRecorder()
    instrumentor = HttpxInstrumentor()
    instrumentor.instrument(recorder.provider, config_for(plugin, {}))

    def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("instrumentor bug")

    try:
        with monkeypatch.context() as patched:
            patched.setattr(instrumentor.site, "attributes", broken)
            assert httpx.get(f"{base}/ok", timeout=10).text == "ok"
        assert recorder.spans == ()  # the span could not start: the call went on without it
        monkeypatch.setattr(instrumented, "_RAW_VERSIONS", None)
        assert httpx.get(f"{base}/ok", timeout=10).text == "ok"
    finally:
        instrumentor.uninstrument()
        recorder.shutdown()
    assert [error.where for error in errors] == ["httpx: call start", "httpx: response"]
    [span] = recorder.spans  # the response step failed: the span still ended, with what it had
    assert span.attributes["url.full"] == f"{base}/ok"


# The instrumentor contract (patch orders, double instrument, uninstrument, version range).
contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "httpx"),
    exercise="tests.unit.instrumentors.exercises:httpx_call",
)
