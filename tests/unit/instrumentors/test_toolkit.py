"""The instrumentor toolkit: one CLIENT or SERVER span per call, whatever form the call takes."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import sys
import traceback
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from telemetry_run.instrumentors import _http, base, toolkit
from telemetry_run.instrumentors.toolkit import (
    HTTP_CLIENT,
    HTTP_SERVER,
    RPC_CLIENT,
    RPC_SERVER,
    CallSite,
    client_call,
    server_call,
)
from telemetry_run.sdk import TracerProvider, baggage
from telemetry_run.sdk.context import Context, get_value, set_value, suppress_instrumentation
from telemetry_run.sdk.diagnostics import Diagnostics
from telemetry_run.sdk.propagation import (
    TextMapPropagator,
    WSGIEnvironGetter,
    _textmap,
    get_global_textmap,
    set_global_textmap,
)
from telemetry_run.sdk.trace.api import SpanKind, StatusCode, TraceState
from telemetry_run.sdk.trace.current import get_current_span, use_span
from telemetry_run.sdk.trace.sampling import Decision, Sampler, SamplingResult
from telemetry_run.testing import SpanRecorder
from tests.native_twins import require_native

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _request_attributes(request: dict[str, Any]) -> dict[str, Any]:
    return _http.client_request_attributes(request["method"], request["url"])


def _client_span_name(attributes: dict[str, Any], request: dict[str, Any]) -> str:
    return _http.client_span_name(attributes["http.request.method"])


def _client(recorder: SpanRecorder, **options: Any) -> CallSite:
    options.setdefault("rules", HTTP_CLIENT)
    return client_call(
        recorder.tracer,
        "test client",
        attributes=_request_attributes,
        span_name=_client_span_name,
        carrier=lambda request: request["headers"],
        **options,
    )


def _server(recorder: SpanRecorder, **options: Any) -> CallSite:
    options.setdefault("rules", HTTP_SERVER)
    return server_call(
        recorder.tracer,
        "test server",
        attributes=lambda headers, route="/": {"url.path": route},
        span_name="GET",
        carrier=lambda headers, route="/": headers,
        **options,
    )


def _request(url: str = "http://example.com/a?token=s3cret") -> dict[str, Any]:
    return {"method": "GET", "url": url, "headers": {}}


def _consumer(recorder: SpanRecorder) -> CallSite:
    """A queue's receive: a CONSUMER site reading the context from the message's headers."""
    return server_call(
        recorder.tracer,
        "queue get",
        kind=SpanKind.CONSUMER,
        attributes=lambda headers: {"messaging.operation.type": "receive"},
        span_name="queue get",
        carrier=lambda headers: headers,
    )


@pytest.fixture(autouse=True, params=["native", "python"])
def toolkit_twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test with ``CallSite.start`` and ``Call.__exit__``, ``end`` and ``detach`` native
    (``sdk/_speedups.c`` site_start, call_exit, call_end, call_detach), then all Python."""
    if request.param == "python":
        monkeypatch.setattr(toolkit.CallSite, "start", toolkit._python_start)
        monkeypatch.setattr(toolkit.Call, "__exit__", toolkit._python_exit)
        monkeypatch.setattr(toolkit.Call, "end", toolkit._python_end)
        monkeypatch.setattr(toolkit.Call, "detach", toolkit._python_detach)
    else:
        require_native()
        assert toolkit.CallSite.start is toolkit._native_start
        assert toolkit.Call.__exit__ is toolkit._native_exit
        assert toolkit.Call.end is toolkit._native_end
        assert toolkit.Call.detach is toolkit._native_detach
    return str(request.param)


# -- the forms ----------------------------------------------------------------------------------


def test_a_client_call_is_one_span_and_carries_its_context(span_recorder: SpanRecorder) -> None:
    site = _client(span_recorder)
    request = _request()
    with site.call(request) as call:
        assert get_current_span() is call.span  # the call's context is current inside
        call.set_status_code(200)
    (span,) = span_recorder.spans
    assert span.kind is SpanKind.CLIENT
    assert span.name == "GET"
    assert span.attributes["url.full"] == "http://example.com/a?token=REDACTED"
    assert span.attributes["http.response.status_code"] == 200
    trace_id, span_id = f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"
    assert request["headers"]["traceparent"].startswith(f"00-{trace_id}-{span_id}-")
    assert not get_current_span().get_span_context().is_valid  # detached after


def test_a_server_call_continues_the_callers_trace(span_recorder: SpanRecorder) -> None:
    site = _server(span_recorder)

    @site
    def handle(headers: dict[str, str], route: str = "/") -> str:
        return f"handled {route}"

    assert handle({"traceparent": PARENT, "baggage": "k=v"}, route="/users") == "handled /users"
    (span,) = span_recorder.spans
    assert span.kind is SpanKind.SERVER
    assert span.attributes["url.path"] == "/users"
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"


def test_a_server_call_started_in_the_usual_form_continues_the_trace(
    span_recorder: SpanRecorder,
) -> None:
    """The form every server instrumentor uses: positional arguments only."""
    with _server(span_recorder).call({"traceparent": PARENT}) as call:
        assert get_current_span() is call.span
    (span,) = span_recorder.spans
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None and span.parent.is_remote


def test_without_a_header_a_server_starts_a_trace_and_a_consumer_continues_its_own(
    span_recorder: SpanRecorder,
) -> None:
    consumer = _consumer(span_recorder)
    outer = span_recorder.tracer.start_span("poll loop")
    with use_span(outer, end_on_exit=True):
        with _server(span_recorder).call({}):
            pass
        with consumer.call({}):
            pass
    served, consumed, _ = span_recorder.spans
    assert served.parent is None  # a request without a header: a trace of its own
    assert (
        consumed.parent is not None and consumed.parent.span_id == outer.get_span_context().span_id
    )


def test_a_malformed_incoming_header_starts_a_new_trace(span_recorder: SpanRecorder) -> None:
    with _server(span_recorder).call({"traceparent": "00-zz-not-a-header"}):
        pass
    (span,) = span_recorder.spans
    assert span.parent is None


def test_an_async_function_is_one_call(span_recorder: SpanRecorder) -> None:
    @_client(span_recorder)
    async def fetch(request: dict[str, Any]) -> str:
        await asyncio.sleep(0)
        return f"span {get_current_span().get_span_context().span_id:016x}"

    result = asyncio.run(fetch(_request()))
    (span,) = span_recorder.spans
    assert result == f"span {span.context.span_id:016x}"  # current while the coroutine ran


def test_a_generator_call_ends_with_its_stream(span_recorder: SpanRecorder) -> None:
    seen: list[int] = []

    @_server(span_recorder)
    def stream(headers: dict[str, str]) -> Iterator[int]:
        for i in range(3):
            seen.append(get_current_span().get_span_context().span_id)
            yield i

    chunks = stream({})
    assert next(chunks) == 0
    assert span_recorder.spans == ()  # still streaming
    assert list(chunks) == [1, 2]
    (span,) = span_recorder.spans
    assert seen == [span.context.span_id] * 3  # every step ran inside the call's context
    assert not get_current_span().get_span_context().is_valid  # nothing left attached


def test_a_stream_closed_early_ends_its_span(span_recorder: SpanRecorder) -> None:
    closed: list[bool] = []

    @_server(span_recorder)
    def stream(headers: dict[str, str]) -> Iterator[int]:
        try:
            yield from range(10)
        finally:
            closed.append(True)

    chunks = stream({})
    assert next(chunks) == 0
    chunks.close()
    assert closed == [True]  # the application's generator was closed too
    (span,) = span_recorder.spans
    assert span.status.status_code is StatusCode.UNSET


def test_a_stream_dropped_unfinished_ends_its_span_when_collected(
    span_recorder: SpanRecorder,
) -> None:
    @_server(span_recorder)
    def stream(headers: dict[str, str]) -> Iterator[int]:
        yield from range(10)

    chunks = stream({})
    next(chunks)
    del chunks
    gc.collect()
    assert len(span_recorder.spans) == 1


def test_an_async_generator_call_ends_with_its_stream_or_aclose(
    span_recorder: SpanRecorder,
) -> None:
    @_server(span_recorder)
    async def stream(headers: dict[str, str]) -> AsyncIterator[int]:
        for i in range(3):
            yield i

    async def consume() -> list[int]:
        whole = [chunk async for chunk in stream({})]
        partial = stream({})
        assert await partial.__anext__() == 0
        assert len(span_recorder.spans) == 1  # the first ended, the second streams on
        await partial.aclose()
        return whole

    assert asyncio.run(consume()) == [0, 1, 2]
    assert len(span_recorder.spans) == 2


def test_a_stream_that_raises_records_the_error_and_ends(span_recorder: SpanRecorder) -> None:
    @_server(span_recorder, rules=RPC_SERVER)
    def stream(headers: dict[str, str]) -> Iterator[int]:
        yield 1
        raise ValueError("half way")

    with pytest.raises(ValueError, match="half way"):
        list(stream({}))
    (span,) = span_recorder.spans
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["rpc.grpc.status_code"] == 2  # UNKNOWN: what gRPC answers
    assert [event.name for event in span.events] == ["exception"]


# -- one span per logical call ------------------------------------------------------------------


def test_a_nested_client_call_of_the_same_layer_adds_no_span(span_recorder: SpanRecorder) -> None:
    outer, inner = _client(span_recorder), _client(span_recorder)
    inner_request = _request("http://example.com/redirected")
    with outer.call(_request()), inner.call(inner_request) as nested:
        nested.set_status_code(500)  # inert: no span to set it on
    (span,) = span_recorder.spans
    assert "http.response.status_code" not in span.attributes
    # The inner call still carries the context: the outer span is its parent downstream.
    assert f"{span.context.span_id:016x}" in inner_request["headers"]["traceparent"]


def test_client_calls_of_other_layers_nest(span_recorder: SpanRecorder) -> None:
    with (
        _client(span_recorder, layer="rpc").call(_request()),
        _client(span_recorder).call(_request()),
    ):
        pass
    inner, outer = span_recorder.spans
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id


def test_suppression_and_excluded_calls_make_no_span(span_recorder: SpanRecorder) -> None:
    excluded = _client(span_recorder, excluded=lambda request: "/health" in request["url"])
    request = _request("http://example.com/health")
    with excluded.call(request):
        pass
    with suppress_instrumentation(), _client(span_recorder).call(_request()):
        pass
    assert span_recorder.spans == ()
    assert request["headers"] == {}  # an excluded call is not propagated either


# -- exceptions: the application's and ours -----------------------------------------------------


def test_the_apps_exception_is_recorded_and_reraised_unchanged(
    span_recorder: SpanRecorder,
) -> None:
    error = ConnectionError("refused by http://user:pw@example.com")

    @_client(span_recorder)
    def send(request: dict[str, Any]) -> None:
        raise error

    with pytest.raises(ConnectionError) as raised:
        send(_request())
    assert raised.value is error
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert frames[-1] == "send"  # the traceback still ends where the application raised
    (span,) = span_recorder.spans
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ConnectionError"
    (event,) = span.events
    assert "pw@" not in str(event.attributes["exception.message"])  # scrubbed


def test_a_cancellation_is_not_an_error(span_recorder: SpanRecorder) -> None:
    @_server(span_recorder)
    async def handle(headers: dict[str, str]) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(handle({}))
    (span,) = span_recorder.spans
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()


def test_an_exception_raised_while_another_thread_imports_asyncio_is_recorded(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the call sees while another thread is half-way through ``import asyncio``: the
    # module in sys.modules without its attributes yet (seen in CI: a lost CLIENT span).
    monkeypatch.setitem(sys.modules, "asyncio", types.ModuleType("asyncio"))
    monkeypatch.delitem(sys.modules, "asyncio.exceptions")

    @_client(span_recorder)
    def send(request: dict[str, Any]) -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        send(_request())
    (span,) = span_recorder.spans
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ConnectionError"


def test_a_span_whose_exception_cannot_be_recorded_still_ends(
    span_recorder: SpanRecorder,
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("bug in the status rules")

    @_client(span_recorder, rules=toolkit.StatusRules(HTTP_CLIENT.code, broken))
    def send(request: dict[str, Any]) -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        send(_request())
    (span,) = span_recorder.spans  # ended, so exported and counted
    assert span.end_time is not None
    assert [error.where for error in span_recorder.internal_errors] == ["test client: call end"]
    span_recorder.internal_errors.clear()  # expected: the fixture fails the test on others


def test_a_failing_attribute_builder_never_reaches_the_app(span_recorder: SpanRecorder) -> None:
    def broken(request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug in the builder")

    site = _client(span_recorder)
    site.attributes = broken

    @site
    def send(request: dict[str, Any]) -> str:
        return "sent"

    assert send(_request()) == "sent"
    assert span_recorder.spans == ()
    assert [error.where for error in span_recorder.internal_errors] == [
        "test client: call start"
    ]  # reported once, for the one call
    span_recorder.internal_errors.clear()  # expected: the fixture fails the test on others


class _FixedIds:
    """Ids with leading zero digits: the header must keep its width."""

    def generate_trace_id(self) -> int:
        return 0x0000000000000001_00000000000000AB

    def generate_span_id(self) -> int:
        return 0x00000000000000CD


class _StateSampler(Sampler):
    """Samples every span, giving it a trace state of its own."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, None, TraceState([("ours", "s1")]))

    def description(self) -> str:
        return "StateSampler"


def _injected_as_inject_would(site: CallSite, context: Any = None) -> tuple[dict[str, str], dict]:
    """A call's dict carrier after its start, and what the general ``inject`` writes for the
    call's context (the composite of the global propagators, step by step)."""
    get_global_textmap()  # loaded (from OTEL_PROPAGATORS) before the call: the usual state
    stale = {"traceparent": "00-stale-stale-00"}  # the caller's: replaced, when we write one
    carrier = dict(stale)
    token = None if context is None else toolkit.attach(context)
    try:
        with site.call({"method": "GET", "url": "http://example.com/", "headers": carrier}) as call:
            expected = dict(stale)
            _textmap.inject(expected, call.context)
    finally:
        if token is not None:
            toolkit.detach(token)
    return carrier, expected


@pytest.mark.parametrize(
    "situation",
    [
        "root",
        "remote parent",
        "trace state",
        "sampler's state",
        "baggage",
        "sampled out",
        "own propagator",
        "ids",
    ],
)
def test_a_dict_carrier_gets_what_inject_writes(
    span_recorder: SpanRecorder, situation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The native start writes ``traceparent`` into a dict itself when that is all there is to
    write; every other case goes through ``inject_started``: the headers are the same."""
    recorder = span_recorder
    context = None
    if situation in ("remote parent", "trace state", "sampled out"):
        headers = {"traceparent": PARENT[:-2] + ("00" if situation == "sampled out" else "01")}
        if situation == "trace state":
            headers["tracestate"] = "vendor=a1,other=b2"
        context = _textmap.extract(headers)
    elif situation == "baggage":
        context = baggage.set_baggage("tenant", "t-1")
    elif situation == "own propagator":  # baggage only: the caller's traceparent stays
        from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator

        monkeypatch.setattr(_textmap, "_global", W3CBaggagePropagator())
    elif situation == "sampler's state":
        recorder = SpanRecorder(sampler=_StateSampler())
    elif situation == "ids":
        provider = TracerProvider(id_generator=_FixedIds(), shutdown_on_exit=False)
        recorder = SpanRecorder()
        monkeypatch.setattr(recorder, "tracer", provider.get_tracer("fixed ids"))
    carrier, expected = _injected_as_inject_would(_client(recorder), context)
    assert carrier == expected
    if situation == "own propagator":
        assert carrier == {"traceparent": "00-stale-stale-00"}
        return
    assert (
        set(carrier)
        == {
            "root": {"traceparent"},
            "remote parent": {"traceparent"},
            "trace state": {"traceparent", "tracestate"},
            "sampler's state": {"traceparent", "tracestate"},
            "baggage": {"traceparent", "baggage"},
            "sampled out": {"traceparent"},
            "ids": {"traceparent"},
        }[situation]
    )
    version, trace_id, span_id, flags = carrier["traceparent"].split("-")
    assert version == "00"
    if situation == "ids":
        assert (trace_id, span_id) == ("000000000000000100000000000000ab", "00000000000000cd")
    if situation in ("remote parent", "trace state", "sampled out"):
        assert trace_id == PARENT.split("-")[1]
    # A root of random ids says so (W3C Level 2), a parent's flags are kept, fixed ids are not
    # random.
    random_root = situation in ("root", "baggage", "sampler's state")
    assert flags == ("03" if random_root else "00" if situation == "sampled out" else "01")


def test_a_failing_carrier_never_reaches_the_app(span_recorder: SpanRecorder) -> None:
    def no_headers(request: dict[str, Any]) -> Any:
        raise KeyError("headers")

    site = _client(span_recorder)
    site.carrier = no_headers
    with site.call(_request()) as call:
        result = "sent"
    assert result == "sent" and not call.span.is_recording()
    assert [error.where for error in span_recorder.internal_errors] == ["test client: call start"]
    span_recorder.internal_errors.clear()  # expected: the fixture fails the test on others
    assert span_recorder.spans == ()


def test_a_failing_setter_never_reaches_the_app(span_recorder: SpanRecorder) -> None:
    class BrokenSetter:
        def set(self, carrier: dict[str, str], key: str, value: str) -> None:
            raise RuntimeError("bug in the setter")

    request = _request()
    with _client(span_recorder, setter=BrokenSetter()).call(request) as call:
        call.set_status_code(200)
    (span,) = span_recorder.spans  # the call is traced; only its propagation is lost
    assert span.attributes["http.response.status_code"] == 200
    assert request["headers"] == {}


# -- status rules and header capture ------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "code", "error"),
    [
        (HTTP_SERVER, 404, False),
        (HTTP_SERVER, 503, True),
        (HTTP_CLIENT, 404, True),
        (HTTP_CLIENT, 302, False),
        (RPC_SERVER, 5, False),  # NOT_FOUND: the caller's mistake
        (RPC_SERVER, 13, True),  # INTERNAL
        (RPC_CLIENT, 5, True),
        (RPC_CLIENT, 0, False),
    ],
)
def test_status_rules(
    span_recorder: SpanRecorder, rules: toolkit.StatusRules, code: int, error: bool
) -> None:
    with _server(span_recorder, rules=rules).call({}) as call:
        call.set_status_code(code)
    (span,) = span_recorder.spans
    assert (span.status.status_code is StatusCode.ERROR) is error
    assert ("error.type" in span.attributes) is error


def test_headers_are_captured_as_configured(span_recorder: SpanRecorder) -> None:
    pattern = _http._header_patterns(["x-request-id", "authorization", "content-type"])
    settings = _http.HttpSettings(request_headers=pattern, response_headers=pattern)
    site = _server(
        span_recorder, settings=settings, request_headers=lambda headers: headers.items()
    )
    with site.call({"X-Request-Id": "r-1", "Authorization": "Bearer s"}) as call:
        call.capture_response_headers([("Content-Type", "text/plain")])
    (span,) = span_recorder.spans
    assert span.attributes["http.request.header.x-request-id"] == ("r-1",)
    assert span.attributes["http.request.header.authorization"] == ("[REDACTED]",)
    assert span.attributes["http.response.header.content-type"] == ("text/plain",)


# -- the hook for metrics -----------------------------------------------------------------------


def test_call_end_hooks_see_each_ended_call_once(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended: list[toolkit.Call] = []

    def broken(call: toolkit.Call) -> None:
        raise RuntimeError("a hook's bug")

    monkeypatch.setattr(toolkit, "CALL_END_HOOKS", [broken, ended.append])
    with _client(span_recorder).call(_request()) as call:
        pass
    call.end()  # a second end changes nothing
    assert ended == [call]
    assert len(span_recorder.spans) == 1
    assert [error.where for error in span_recorder.internal_errors] == [
        "test client: call end hook"
    ]
    span_recorder.internal_errors.clear()  # expected: the fixture fails the test on others


# -- messaging: producer and consumer -----------------------------------------------------------


def test_a_consumer_continues_the_producer_from_when_it_started_waiting(
    span_recorder: SpanRecorder,
) -> None:
    producer = client_call(
        span_recorder.tracer,
        "queue put",
        kind=SpanKind.PRODUCER,
        attributes=lambda headers: {"messaging.operation.type": "send"},
        span_name="queue put",
        carrier=lambda headers: headers,
        layer=None,
    )
    consumer = _consumer(span_recorder)
    message: dict[str, str] = {}
    with producer.call(message):
        pass
    waited_from = span_recorder.spans[0].end_time + 1  # type: ignore[operator]
    with consumer.call(message, start_time=waited_from):
        pass
    put, get = span_recorder.spans
    assert (put.kind, get.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert get.parent is not None and get.parent.span_id == put.context.span_id
    assert get.start_time == waited_from


def test_a_generator_called_with_bad_arguments_starts_nothing(span_recorder: SpanRecorder) -> None:
    @_server(span_recorder)
    def stream(headers: dict[str, str]) -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError):
        stream({}, "one too many")  # type: ignore[call-arg]
    assert span_recorder.spans == ()
    assert not get_current_span().get_span_context().is_valid


# -- the call's exit (native and Python alike, see ``toolkit_twin``) -------------------------------


class FailingOnEnd:
    """A span processor with a bug in ``on_end``."""

    has_on_start = False

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        return None

    def on_end(self, span: Any) -> None:
        raise RuntimeError("a processor's bug")

    def shutdown(self, *, deadline: float) -> None:
        return None

    def force_flush(self, *, deadline: float) -> bool:
        return True


def test_a_processor_failing_at_the_end_is_reported_and_the_context_left() -> None:
    diagnostics = Diagnostics()
    errors: list[Any] = []
    diagnostics.on_internal_error = errors.append
    provider = TracerProvider(diagnostics=diagnostics, shutdown_on_exit=False)
    provider.add_span_processor(FailingOnEnd())  # type: ignore[arg-type]
    site = client_call(
        provider.get_tracer("t"),
        "test client",
        attributes=_request_attributes,
        span_name=_client_span_name,
        carrier=lambda request: request["headers"],
        rules=HTTP_CLIENT,
    )
    with site.call(_request()) as call:
        assert get_current_span() is call.span
    assert not get_current_span().is_recording()
    assert call.ended and call.span.end_time is not None  # type: ignore[attr-defined]
    assert [error.where for error in errors] == ["span processor on_end"]
    assert diagnostics.spans_ended.value == 1  # counted as every ended span is


def test_an_interrupt_in_an_end_hook_leaves_with_the_context_restored(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(call: toolkit.Call) -> None:
        raise KeyboardInterrupt

    later: list[toolkit.Call] = []
    monkeypatch.setattr(toolkit, "CALL_END_HOOKS", [interrupted, later.append])
    with pytest.raises(KeyboardInterrupt), _client(span_recorder).call(_request()) as call:
        pass
    assert not get_current_span().is_recording()
    assert call.ended and len(span_recorder.spans) == 1
    assert later == []  # as in Python, the interrupt stops the hooks


def test_a_hook_that_fails_then_a_report_that_fails_raises_after_the_detach(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In strict mode (tests, debugging) a report raises: the exit lets it through, detached."""

    def broken(call: toolkit.Call) -> None:
        raise RuntimeError("a hook's bug")

    def strict(where: str, exc: Exception) -> None:
        raise AssertionError(where) from exc

    monkeypatch.setattr(toolkit, "CALL_END_HOOKS", [broken])
    monkeypatch.setattr(toolkit, "_report", strict)
    with pytest.raises(AssertionError, match="call end"), _client(span_recorder).call(_request()):
        pass
    assert not get_current_span().is_recording()


def test_a_call_left_in_another_context_is_tolerated(
    span_recorder: SpanRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    site = _client(span_recorder)

    def attached_here_left_elsewhere() -> tuple[toolkit.Call | None, Any]:
        call = site.start(_request())
        if call is not None:
            contextvars.copy_context().run(call.__exit__, None, None, None)
        return call, get_current_span()

    with caplog.at_level(logging.DEBUG, logger="telemetry_run"):
        call, current = contextvars.copy_context().run(attached_here_left_elsewhere)
    assert call is not None and call.ended and len(span_recorder.spans) == 1
    assert "detached in another context" in caplog.text
    assert current is call.span  # the context that attached it was never left


def test_a_deferred_call_is_only_detached_and_ends_later(span_recorder: SpanRecorder) -> None:
    with _client(span_recorder).call(_request()) as call:
        call.defer_end()
    assert not get_current_span().is_recording()
    assert not call.ended and span_recorder.spans == ()
    call.end()
    assert len(span_recorder.spans) == 1


def test_a_call_class_that_keeps_the_steps_is_made_and_ended_as_a_call_is(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server's own class (WSGI's ``ServerRequest``): a subclass adding slots only."""

    class Request(toolkit.Call):
        __slots__ = ("noted",)

    ended: list[toolkit.Call] = []
    monkeypatch.setattr(toolkit, "CALL_END_HOOKS", [ended.append])
    site = _client(span_recorder, call_type=Request)
    call = site.start(_request())
    assert type(call) is Request
    assert get_current_span() is call.span
    assert (call.status_code, call.route, call.exception, call.exception_recorded) == (
        None,
        None,
        None,
        False,
    )
    assert isinstance(call.started, float) and call.attributes["http.request.method"] == "GET"
    with pytest.raises(AttributeError):
        call.noted  # noqa: B018  # left unset, as ``Call.__init__`` leaves it
    call.noted = "set by its instrumentor"
    call.__exit__(None, None, None)
    assert ended == [call] and call.ended and len(span_recorder.spans) == 1
    assert not get_current_span().is_recording()
    call.end()
    call.detach()
    assert ended == [call] and len(span_recorder.spans) == 1  # once


def test_a_call_class_with_its_own_init_is_made_by_it(span_recorder: SpanRecorder) -> None:
    class Noted(toolkit.Call):
        __slots__ = ("noted",)

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.noted = "by __init__"

    with _client(span_recorder, call_type=Noted).call(_request()) as call:
        assert type(call) is Noted and call.noted == "by __init__"
    assert len(span_recorder.spans) == 1
    assert not get_current_span().is_recording()


def test_a_call_detached_before_its_exit_ends_and_leaves_once(span_recorder: SpanRecorder) -> None:
    """WSGI's order: the body's end and the detach come from the framework's own frames."""
    call = _client(span_recorder).start(_request())
    assert call is not None and get_current_span() is call.span
    call.detach()
    assert not get_current_span().is_recording()
    call.end()
    call.end()
    call.detach()
    call.__exit__(None, None, None)
    assert len(span_recorder.spans) == 1 and not get_current_span().is_recording()


def test_a_call_class_of_an_instrumentor_ends_its_own_way(span_recorder: SpanRecorder) -> None:
    class Counted(toolkit.Call):
        __slots__ = ()
        ends = 0

        def end(self) -> None:
            type(self).ends += 1
            super().end()

    with _client(span_recorder, call_type=Counted).call(_request()) as call:
        assert type(call) is Counted
    assert Counted.ends == 1 and len(span_recorder.spans) == 1
    assert not get_current_span().is_recording()


# -- the gate of an instrumentor's site (native and Python alike) ---------------------------------


class _Gated(base.Instrumentor):
    """An instrumentor whose one site is gated by its ``enabled``."""

    def _instrument(self, tracer_provider: Any, config: Any) -> None:
        self.calls = 0


def _gated_site(recorder: SpanRecorder, instrumentor: base.Instrumentor) -> CallSite:
    return _client(recorder, enabled=instrumentor.enabled)


def test_an_instrumentors_gate_opens_while_it_is_active_and_not_suppressed(
    span_recorder: SpanRecorder,
) -> None:
    instrumentor = _Gated()
    site = _gated_site(span_recorder, instrumentor)
    assert site.start(_request()) is None  # not instrumented yet
    instrumentor.instrument(span_recorder.provider)
    try:
        with site.call(_request()):
            pass
        with suppress_instrumentation():
            assert site.start(_request()) is None
        with site.call(_request()):
            pass
    finally:
        instrumentor.uninstrument()
    assert site.start(_request()) is None
    assert len(span_recorder.spans) == 2


def test_a_gate_of_its_own_or_a_replaced_suppression_check_is_called(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    class OwnGate(_Gated):
        asked = 0

        def enabled(self) -> bool:
            type(self).asked += 1
            return False

    own = OwnGate()
    own.instrument(span_recorder.provider)
    try:
        assert _gated_site(span_recorder, own).start(_request()) is None
    finally:
        own.uninstrument()
    assert OwnGate.asked == 1

    instrumentor = _Gated()
    instrumentor.instrument(span_recorder.provider)
    checked: list[bool] = []

    def everything_suppressed() -> bool:
        checked.append(True)
        return True

    try:
        monkeypatch.setattr(base, "_is_suppressed", everything_suppressed)
        assert _gated_site(span_recorder, instrumentor).start(_request()) is None
    finally:
        instrumentor.uninstrument()
    assert checked == [True] and span_recorder.spans == ()


# -- a WSGI environ's parent (native and Python alike) --------------------------------------------


class _EnvironReader(TextMapPropagator):
    """A propagator of the user's choice: reads ``x-request-context``, counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
        self.calls += 1
        values = getter.get(carrier, "x-request-context") if getter is not None else None
        return set_value("x-request-context", values[0] if values else None, context or Context())

    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        return None

    @property
    def fields(self) -> set[str]:
        return {"x-request-context"}


def _environ_site(recorder: SpanRecorder) -> CallSite:
    return server_call(
        recorder.tracer,
        "test wsgi",
        attributes=lambda environ: {"url.path": environ.get("PATH_INFO", "/")},
        span_name="GET",
        carrier=lambda environ: environ,
        getter=WSGIEnvironGetter(),
        rules=HTTP_SERVER,
    )


@pytest.fixture
def restore_textmap() -> Any:
    saved = _textmap._global, _textmap._default
    yield
    _textmap._global, _textmap._default = saved


def test_an_environ_without_trace_headers_starts_a_trace_and_one_with_them_continues_it(
    span_recorder: SpanRecorder,
) -> None:
    site = _environ_site(span_recorder)
    with site.call({"PATH_INFO": "/a", "traceparent": PARENT}):  # not a header there: a root
        pass
    with site.call({"PATH_INFO": "/b", "HTTP_TRACEPARENT": PARENT}):
        assert baggage.get_all() == {}
    with site.call({"PATH_INFO": "/c", "HTTP_BAGGAGE": "only=baggage"}):
        assert baggage.get_all() == {"only": "baggage"}
    with site.call({"PATH_INFO": "/d", "HTTP_TRACEPARENT": PARENT, "HTTP_BAGGAGE": "k=v"}):
        assert baggage.get_all() == {"k": "v"}
    by_path = {span.attributes["url.path"]: span for span in span_recorder.spans}
    assert by_path["/a"].parent is None and by_path["/c"].parent is None
    for path in ("/b", "/d"):
        parent = by_path[path].parent
        assert parent is not None and parent.trace_id == int(PARENT[3:35], 16)


@pytest.mark.parametrize("how", ["set", "assigned"])
def test_an_environ_reaches_a_propagator_of_the_users_choice(
    span_recorder: SpanRecorder, restore_textmap: Any, how: str
) -> None:
    reader = _EnvironReader()
    if how == "set":
        set_global_textmap(reader)
    else:  # not through set_global_textmap: the default pair is still on record
        get_global_textmap()
        _textmap._global = reader
    with _environ_site(span_recorder).call({"HTTP_X_REQUEST_CONTEXT": "v"}):
        assert get_value("x-request-context") == "v"
    assert reader.calls == 1
