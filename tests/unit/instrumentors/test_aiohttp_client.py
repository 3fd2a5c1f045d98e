"""The aiohttp client instrumentor against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from telemetry_run.instrumentors import aiohttp_client as instrumented
from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.aiohttp_client import AiohttpClientInstrumentor
from telemetry_run.sdk.diagnostics import InternalError, get_diagnostics
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests
from tests.unit.instrumentors.http_clients import instrumenting, recording_server, sent_traceparent

aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is not installed (its matrix session)")


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with recording_server() as served:
        yield served


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Any]:
    yield from instrumenting(span_recorder, AiohttpClientInstrumentor)


def _in_session(use: Callable[[Any], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession(**options) as session:
            return await use(session)

    return asyncio.run(main())


async def _text(session: Any, url: str, **options: Any) -> tuple[int, str]:
    async with session.get(url, **options) as response:
        return response.status, await response.text()


def test_a_call_is_one_client_span_and_carries_the_context(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, seen = server
    headers = {"X-Mine": "1"}

    async def use(session: Any) -> tuple[int, str]:
        with recorder.tracer.start_as_current_span("checkout"):
            return await _text(session, f"{base}/ok", params={"token": "abc"}, headers=headers)

    assert _in_session(use) == (200, "ok")
    assert headers == {"X-Mine": "1"}  # the caller's dict is never changed
    span = recorder.one("GET")
    assert span.kind is SpanKind.CLIENT
    assert (
        span.parent is not None and span.parent.span_id == recorder.one("checkout").context.span_id
    )
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


def test_concurrent_calls_are_each_their_callers_child(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, seen = server

    async def one(session: Any, name: str) -> tuple[int, str]:
        with recorder.tracer.start_as_current_span(name):
            return await _text(session, f"/ok?task={name}")

    async def use(session: Any) -> list[tuple[int, str]]:
        return await asyncio.gather(one(session, "a"), one(session, "b"))

    assert _in_session(use, base_url=base) == [(200, "ok")] * 2
    for name in ("a", "b"):
        [span] = [s for s in recorder.by_name("GET") if s.attributes["url.full"].endswith(name)]
        assert span.attributes["url.full"] == f"{base}/ok?task={name}"  # base_url applied
        assert span.parent is not None and span.parent.span_id == recorder.one(name).context.span_id
    assert sorted(headers["traceparent"] for headers in seen) == sorted(
        map(sent_traceparent, recorder.by_name("GET"))
    )


def test_redirects_are_one_span_with_the_hops_counted(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, seen = server
    assert _in_session(lambda session: _text(session, f"{base}/redirect")) == (200, "ok")
    span = recorder.one("GET")
    assert span.attributes["url.full"] == f"{base}/redirect"
    assert span.attributes["http.request.resend_count"] == 1
    assert span.attributes["http.response.status_code"] == 200
    assert [hop["traceparent"] for hop in seen] == [sent_traceparent(span)] * 2


def test_raise_for_status_keeps_the_status_code(instrument: Any, server: Any) -> None:
    recorder = instrument()
    base, _ = server
    with pytest.raises(aiohttp.ClientResponseError) as caught:
        _in_session(lambda session: _text(session, f"{base}/status/404"), raise_for_status=True)
    assert caught.value.status == 404  # aiohttp's own exception, as raised
    span = recorder.one("GET")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 404
    assert span.attributes["error.type"] == "404"


def test_a_connection_error_is_recorded_and_reraised_unchanged(instrument: Any) -> None:
    recorder = instrument()
    with pytest.raises(aiohttp.ClientConnectionError):
        _in_session(lambda session: _text(session, "http://127.0.0.1:9/?api_key=s3cr3t"))
    span = recorder.one("GET")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"].startswith("aiohttp.client_exceptions.")
    assert span.attributes["url.full"] == "http://127.0.0.1:9/?api_key=REDACTED"


def test_urls_are_remembered_by_value_and_never_mixed_up(instrument: Any) -> None:
    """Each call's ``url.full`` is its own: the URL texts remembered per (session base URL,
    str asked for), bounded, give the same answer as the first time, whatever came in between;
    two sessions with other base URLs asking for the same path are told apart."""
    recorder = instrument()
    with recording_server() as (first, _), recording_server() as (second, _):
        asked = [f"{first}/ok?n={index}" for index in range(150)]
        asked += [f"{first}/{'p' * 600}", f"{first}/ok?token=t"]
        asked += list(reversed(asked))

        async def use(session: Any) -> list[str]:
            for url in asked:
                await _text(session, url)
            async with (
                aiohttp.ClientSession(base_url=first) as one,
                aiohttp.ClientSession(base_url=second) as other,
            ):
                for based in (one, other, one):
                    await _text(based, "/ok")
                    await _text(based, "/ok", params={"page": "2"})
            for _ in range(2):  # asked for last: a secret is never what is remembered
                await _text(session, f"{first}/ok?token=t")
            return asked

        _in_session(use)
        expected = [url.replace("token=t", "token=REDACTED") for url in asked]
        for base in (first, second, first):
            expected += [f"{base}/ok", f"{base}/ok?page=2"]
        expected += [f"{first}/ok?token=REDACTED"] * 2
    assert [span.attributes["url.full"] for span in recorder.spans] == expected
    assert instrumented._url_texts  # what it remembers holds no secret
    assert not [text for text in instrumented._url_texts.values() if "token=t" in text]


def test_header_pairs_are_sent_and_captured(instrument: Any, server: Any) -> None:
    """Headers given as pairs (aiohttp takes them so) are sent with the context, and captured."""
    recorder = instrument(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST="x-mine")
    base, seen = server
    pairs = [("X-Mine", "1"), ("X-Mine", "2")]
    assert _in_session(lambda session: _text(session, f"{base}/ok", headers=pairs)) == (200, "ok")
    span = recorder.one("GET")
    assert span.attributes["http.request.header.x-mine"] == ("1", "2")
    assert seen[0]["traceparent"] == sent_traceparent(span)
    assert pairs == [("X-Mine", "1"), ("X-Mine", "2")]


def test_a_call_inside_another_client_call_carries_the_outer_context(
    instrument: Any, server: Any
) -> None:
    """Nested in another HTTP client's call: no span of ours, the outer call's context sent."""
    from telemetry_run.instrumentors._http_client import client_site

    recorder = instrument()
    base, seen = server
    outer = client_site(recorder.tracer, "outer", None)

    async def use(session: Any) -> tuple[int, str]:
        with outer.call("GET", f"{base}/outer", {}):
            return await _text(session, f"{base}/ok", headers={"X-Mine": "1"})

    assert _in_session(use) == (200, "ok")
    (span,) = recorder.spans
    assert span.attributes["url.full"] == f"{base}/outer"
    assert seen[0]["traceparent"] == sent_traceparent(span)
    assert seen[0]["x-mine"] == "1"


def test_a_bug_of_ours_costs_the_span_never_the_call(monkeypatch: Any, server: Any) -> None:
    """Reported through the diagnostics, the call unchanged (not the span_recorder fixture: it
    fails on any internal error, and here they are the point)."""
    errors: list[InternalError] = []
    monkeypatch.setattr(get_diagnostics(), "on_internal_error", errors.append)
    base, _ = server
    recorder = SpanRecorder()
    instrumentor = AiohttpClientInstrumentor()
    instrumentor.instrument(recorder.provider, config_for(plugin, {}))

    def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("instrumentor bug")

    try:
        with monkeypatch.context() as patched:
            patched.setattr(instrumentor.site, "attributes", broken)
            assert _in_session(lambda session: _text(session, f"{base}/ok")) == (200, "ok")
        assert recorder.spans == ()  # the span could not start: the call went on without it
        with monkeypatch.context() as patched:
            patched.setattr(instrumented, "_url", broken)
            assert _in_session(lambda session: _text(session, f"{base}/ok")) == (200, "ok")
        assert recorder.spans == ()  # the request could not be read: the call as it was made
        monkeypatch.setattr(instrumented, "_response", broken)
        assert _in_session(lambda session: _text(session, f"{base}/ok")) == (200, "ok")
    finally:
        instrumentor.uninstrument()
        recorder.shutdown()
    assert [error.where for error in errors] == [
        "aiohttp_client: call start",
        "aiohttp_client: before request",
        "aiohttp_client: response",
    ]
    [span] = recorder.spans  # the response step failed: the span still ended, with what it had
    assert span.attributes["url.full"] == f"{base}/ok"


# The instrumentor contract (patch orders, double instrument, uninstrument, version range).
contract_tests(
    globals(),
    spec=next(spec for spec in plugin.SPECS if spec.name == "aiohttp_client"),
    exercise="tests.unit.instrumentors.exercises:aiohttp_client_call",
)
