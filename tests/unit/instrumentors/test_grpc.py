"""The gRPC instrumentor in-process: both sides of every kind of call, statuses, context.

Servers and channels are made after ``instrument()`` (that is when interceptors are added), on
127.0.0.1 with port 0, and stopped in ``finally``. Spans may end on grpc's threads, so tests
wait for them with a bound, never for a length of time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from telemetry_run.instrumentors import _rpc
from telemetry_run.instrumentors.base import InstrumentorSpec
from telemetry_run.instrumentors.grpc import GrpcInstrumentor
from telemetry_run.instrumentors.plugin import SPECS
from telemetry_run.sdk.context import suppress_instrumentation
from telemetry_run.sdk.diagnostics import InternalError, get_diagnostics
from telemetry_run.sdk.propagation import (
    CompositePropagator,
    TextMapPropagator,
    set_global_textmap,
)
from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator
from telemetry_run.sdk.propagation.tracecontext import TraceContextTextMapPropagator
from telemetry_run.sdk.trace import ReadableSpan
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.sdk.trace.globals import set_tracer_provider
from telemetry_run.testing import SpanRecorder
from telemetry_run.testing.contract import contract_tests
from tests.unit.instrumentors import grpc_support
from tests.unit.instrumentors.grpc_support import KINDS, METHODS, SERVICE, WAIT, Seen

# The built-in spec as instrumentors/plugin.py declares it (checked below); the contract suite
# runs on this copy so that it reports on the instrumentor even where the registration is wrong.
GRPC_SPEC = InstrumentorSpec(
    name="grpc",
    modules=("grpc",),
    requires="grpcio>=1.66,<2",
    load="telemetry_run.instrumentors.grpc:GrpcInstrumentor",
    description="CLIENT and SERVER spans for every gRPC call, context in metadata",
)

contract_tests(globals(), spec=GRPC_SPEC, exercise="tests.unit.instrumentors.grpc_support:one_call")


def test_the_builtin_plugin_registers_the_instrumentor() -> None:
    registered = [spec for spec in SPECS if spec.name == "grpc"]
    assert [(s.modules, s.requires, s.load) for s in registered] == [
        (GRPC_SPEC.modules, GRPC_SPEC.requires, GRPC_SPEC.load)
    ], "instrumentors/plugin.py must declare the grpc spec"


NAMES = {kind: f"{SERVICE}/{path.rsplit('/', 1)[1]}" for kind, path in METHODS.items()}
UNARY = NAMES["unary_unary"]


def wait_for_spans(recorder: SpanRecorder, count: int) -> tuple[ReadableSpan, ...]:
    """The finished spans once there are ``count`` (bounded: fails after WAIT seconds)."""
    deadline = time.monotonic() + WAIT
    while len(recorder.spans) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"expected {count} spans, got {[s.name for s in recorder.spans]}")
        time.sleep(0.01)
    return recorder.spans


def pair(recorder: SpanRecorder, name: str = UNARY) -> tuple[ReadableSpan, ReadableSpan]:
    """The CLIENT and the SERVER span of the only call named ``name``."""
    deadline = time.monotonic() + WAIT
    while True:
        spans = recorder.by_name(name)
        kinds = sorted(span.kind.value for span in spans)
        if len(spans) >= 2:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"expected a client and a server span {name!r}, got kinds {kinds}")
        time.sleep(0.01)
    (client,) = [s for s in spans if s.kind is SpanKind.CLIENT]
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    return client, server


@pytest.fixture
def recorder(span_recorder: SpanRecorder) -> Iterator[SpanRecorder]:
    """gRPC instrumented into ``span_recorder``, which is also the global provider (for the
    handlers' manual spans); uninstrumented after the test."""
    set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    set_tracer_provider(span_recorder.provider)
    instrumentor = GrpcInstrumentor()
    instrumentor.instrument(span_recorder.provider)
    try:
        yield span_recorder
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def channel(recorder: SpanRecorder, seen: Seen) -> Iterator[Any]:
    """An instrumented channel to an instrumented server."""
    with (
        grpc_support.serve(seen) as (port, _),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        channel.port = port
        yield channel


def server_port(channel: Any) -> int:
    return int(channel.port)


# -- the four kinds -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_makes_a_client_and_a_server_span_in_one_trace(
    recorder: SpanRecorder, channel: Any, kind: str
) -> None:
    responses = grpc_support.call(channel, kind)
    assert responses[0].startswith(b"hello")
    client, server = pair(recorder, NAMES[kind])

    assert client.kind is SpanKind.CLIENT and server.kind is SpanKind.SERVER
    assert client.parent is None
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert server.parent.is_remote
    assert server.context.trace_id == client.context.trace_id
    method = METHODS[kind].rsplit("/", 1)[1]
    assert dict(client.attributes) == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": method,
        "server.address": "127.0.0.1",
        "server.port": server_port(channel),
        "rpc.grpc.status_code": 0,
    }
    attributes = dict(server.attributes)
    assert isinstance(attributes.pop("network.peer.port"), int)
    assert attributes == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": method,
        "network.peer.address": "127.0.0.1",
        "rpc.grpc.status_code": 0,
    }
    assert client.status.status_code is StatusCode.UNSET
    assert server.status.status_code is StatusCode.UNSET
    assert not client.events and not server.events


def test_a_client_span_is_a_child_of_the_current_span(recorder: SpanRecorder, channel: Any) -> None:
    with recorder.tracer.start_as_current_span("request") as outer:
        grpc_support.call(channel, "unary_unary")
    client, server = pair(recorder)
    assert client.parent is not None and client.parent.span_id == outer.get_span_context().span_id
    assert server.context.trace_id == outer.get_span_context().trace_id


def test_the_server_span_is_current_in_the_handler(
    recorder: SpanRecorder, channel: Any, seen: Seen
) -> None:
    grpc_support.call(channel, "unary_unary", b"span")
    _, server = pair(recorder)
    inside = recorder.one("inside the handler")
    assert inside.parent is not None and inside.parent.span_id == server.context.span_id
    assert seen.current_span_ids == [server.context.span_id]


def test_each_item_of_a_response_stream_is_produced_in_the_server_span(
    recorder: SpanRecorder, channel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="telemetry_run")
    assert len(grpc_support.call(channel, "unary_stream")) == 3
    _, server = pair(recorder, NAMES["unary_stream"])
    for i in range(3):
        item = recorder.one(f"item {i}")
        assert item.parent is not None and item.parent.span_id == server.context.span_id
        assert item.end_time is not None and server.end_time is not None
        assert item.end_time <= server.end_time  # the span covers the whole stream
    assert "detached" not in caplog.text


def test_an_outgoing_call_from_a_handler_continues_the_trace(
    recorder: SpanRecorder, channel: Any
) -> None:
    target = f"127.0.0.1:{server_port(channel)}"
    assert grpc_support.call(channel, "unary_unary", f"call:{target}".encode()) == [b"inner"]
    spans = wait_for_spans(recorder, 4)
    by_parent = {span.parent.span_id if span.parent else None: span for span in spans}
    outer_client = by_parent[None]
    outer_server = by_parent[outer_client.context.span_id]
    inner_client = by_parent[outer_server.context.span_id]
    inner_server = by_parent[inner_client.context.span_id]
    assert [outer_server.kind, inner_client.kind, inner_server.kind] == [
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.SERVER,
    ]
    assert len({span.context.trace_id for span in spans}) == 1


def test_the_other_call_shapes_are_traced(recorder: SpanRecorder, channel: Any) -> None:
    method = channel.unary_unary(METHODS["unary_unary"])
    response, call = method.with_call(b"with_call", timeout=WAIT)
    assert response == b"with_call" and call.code() is grpc.StatusCode.OK
    assert method.future(b"future", timeout=WAIT).result(WAIT) == b"future"
    stream = channel.stream_unary(METHODS["stream_unary"])
    assert stream.future(iter([b"a", b"b"]), timeout=WAIT).result(WAIT) == b"a+1"
    wait_for_spans(recorder, 6)
    clients = [s for s in recorder.spans if s.kind is SpanKind.CLIENT]
    assert sorted(s.name for s in clients) == sorted([UNARY, UNARY, NAMES["stream_unary"]])
    assert all(s.attributes["rpc.grpc.status_code"] == 0 for s in clients)


# -- statuses -----------------------------------------------------------------------------------


SERVER_ERRORS = {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE"}
SERVER_ERRORS.add("DATA_LOSS")
ABORT_CODES = [code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK]


@pytest.mark.parametrize("code", ABORT_CODES)
def test_an_abort_fails_the_client_and_the_server_only_for_its_own_faults(
    recorder: SpanRecorder, channel: Any, code: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_support.call(channel, "unary_unary", f"abort:{code}".encode())
    assert raised.value.code() is getattr(grpc.StatusCode, code)
    assert raised.value.details() == f"aborted with {code}"
    client, server = pair(recorder)
    value = getattr(grpc.StatusCode, code).value[0]

    assert client.attributes["rpc.grpc.status_code"] == value
    assert client.attributes["error.type"] == code
    assert client.status.status_code is StatusCode.ERROR
    assert client.status.description == f"aborted with {code}"
    assert not client.events

    assert server.attributes["rpc.grpc.status_code"] == value
    if code in SERVER_ERRORS:
        assert server.status.status_code is StatusCode.ERROR
        assert server.attributes["error.type"] == code
        assert [event.name for event in server.events] == ["exception"]
    else:  # the client's fault: not the server's error, and abort's exception is no event
        assert server.status.status_code is StatusCode.UNSET
        assert "error.type" not in server.attributes
        assert not server.events


def test_an_abort_in_a_response_stream(recorder: SpanRecorder, channel: Any) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_support.call(channel, "unary_stream", b"abort:NOT_FOUND")
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    client, server = pair(recorder, NAMES["unary_stream"])
    assert client.attributes["rpc.grpc.status_code"] == 5
    assert client.status.status_code is StatusCode.ERROR
    assert server.attributes["rpc.grpc.status_code"] == 5
    assert server.status.status_code is StatusCode.UNSET and not server.events


@pytest.mark.parametrize("kind", KINDS)
def test_a_handler_exception_is_unknown_and_recorded(
    recorder: SpanRecorder, channel: Any, kind: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_support.call(channel, kind, b"raise")
    assert raised.value.code() is grpc.StatusCode.UNKNOWN
    client, server = pair(recorder, NAMES[kind])
    assert server.attributes["rpc.grpc.status_code"] == 2
    assert server.attributes["error.type"] == "UNKNOWN"
    assert server.status.status_code is StatusCode.ERROR
    assert server.status.description == "ValueError: the handler failed"
    (event,) = server.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert client.attributes["rpc.grpc.status_code"] == 2
    assert client.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    ("code", "server_status"),
    [("INVALID_ARGUMENT", StatusCode.UNSET), ("UNAVAILABLE", StatusCode.ERROR)],
)
def test_set_code_without_raising_is_the_status(
    recorder: SpanRecorder, channel: Any, code: str, server_status: StatusCode
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_support.call(channel, "unary_unary", f"set_code:{code}".encode())
    assert raised.value.code() is getattr(grpc.StatusCode, code)
    client, server = pair(recorder)
    value = getattr(grpc.StatusCode, code).value[0]
    assert server.attributes["rpc.grpc.status_code"] == value
    assert server.status.status_code is server_status
    assert not server.events
    assert client.attributes["rpc.grpc.status_code"] == value
    assert client.status.status_code is StatusCode.ERROR
    assert client.status.description == f"set {code}"


def test_a_deadline_exceeded_fails_both_sides(recorder: SpanRecorder, channel: Any) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_support.call(channel, "unary_unary", b"wait", timeout=0.2)
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    client, server = pair(recorder)
    assert client.attributes["rpc.grpc.status_code"] == 4
    assert client.attributes["error.type"] == "DEADLINE_EXCEEDED"
    assert client.status.status_code is StatusCode.ERROR
    assert server.attributes["rpc.grpc.status_code"] == 4
    assert server.status.status_code is StatusCode.ERROR


def test_cancelling_a_response_stream_ends_both_spans(recorder: SpanRecorder, channel: Any) -> None:
    call = channel.unary_stream(METHODS["unary_stream"])(b"endless", timeout=WAIT)
    assert next(call) == b"item 0"
    assert call.cancel()
    with pytest.raises(grpc.RpcError) as raised:
        list(call)
    assert raised.value.code() is grpc.StatusCode.CANCELLED
    client, server = pair(recorder, NAMES["unary_stream"])
    assert client.attributes["rpc.grpc.status_code"] == 1
    assert client.status.status_code is StatusCode.ERROR  # the client rule: every code but OK
    assert server.attributes["rpc.grpc.status_code"] == 1
    assert server.status.status_code is StatusCode.UNSET
    assert not server.events


def test_an_unimplemented_method_has_only_a_client_span(
    recorder: SpanRecorder, channel: Any
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary(f"/{SERVICE}/Missing")(b"x", timeout=WAIT)
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
    (client,) = wait_for_spans(recorder, 1)
    assert client.name == f"{SERVICE}/Missing" and client.kind is SpanKind.CLIENT
    assert client.attributes["rpc.grpc.status_code"] == 12
    assert client.attributes["error.type"] == "UNIMPLEMENTED"


def test_a_channel_failure_reaches_the_application_unchanged(recorder: SpanRecorder) -> None:
    from telemetry_run.testing.otlp import free_port

    with (
        grpc.insecure_channel(f"127.0.0.1:{free_port()}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        channel.unary_unary(METHODS["unary_unary"])(b"x", timeout=WAIT)
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert isinstance(raised.value, grpc.Call)
    (client,) = wait_for_spans(recorder, 1)
    assert client.attributes["rpc.grpc.status_code"] == 14
    assert client.status.status_code is StatusCode.ERROR


# -- metadata -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_the_callers_metadata_is_not_changed(
    recorder: SpanRecorder, channel: Any, seen: Seen, kind: str
) -> None:
    metadata = [("x-tenant", "blue")]
    grpc_support.call(channel, kind, metadata=metadata)
    assert metadata == [("x-tenant", "blue")]
    frozen = (("x-tenant", "green"),)
    grpc_support.call(channel, kind, metadata=frozen)
    received = seen.metadata
    assert [m["x-tenant"] for m in received] == ["blue", "green"]
    assert all(m["traceparent"].startswith("00-") for m in received)


def test_upper_case_propagation_keys_are_lower_cased(recorder: SpanRecorder, seen: Seen) -> None:
    from telemetry_run.sdk.context import Context

    class Shouting(TextMapPropagator):
        """A propagator whose header name has capitals, as B3's ``X-B3-TraceId`` does."""

        @property
        def fields(self) -> set[str]:
            return {"X-Trace"}

        def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
            setter.set(carrier, "X-Trace", "loud")

        def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Context:
            return context if context is not None else Context()

    set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), Shouting()]))
    with (
        grpc_support.serve(seen) as (port, _),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        assert grpc_support.call(channel, "unary_unary") == [b"hello"]
    assert seen.metadata[0]["x-trace"] == "loud"


# -- what is patched and when ---------------------------------------------------------------------


def test_the_application_interceptors_are_kept(recorder: SpanRecorder, seen: Seen) -> None:
    class Tagging(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            details = details._replace(metadata=[*(details.metadata or ()), ("x-tag", "1")])
            return continuation(details, request)

    class Counting(grpc.ServerInterceptor):  # type: ignore[misc]
        calls = 0

        def intercept_service(self, continuation: Any, details: Any) -> Any:
            Counting.calls += 1
            return continuation(details)

    from concurrent import futures

    executor = futures.ThreadPoolExecutor(2)
    server = grpc.server(executor, None, [Counting()])  # interceptors given positionally
    try:
        server.add_generic_rpc_handlers((grpc_support.handler(seen),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        channel = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{port}"), Tagging())
        with channel:
            assert grpc_support.call(channel, "unary_unary") == [b"hello"]
    finally:
        server.stop(None).wait(WAIT)
        executor.shutdown(wait=False)
    assert Counting.calls == 1
    assert seen.metadata[0]["x-tag"] == "1" and "traceparent" in seen.metadata[0]
    client, server_span = pair(recorder)
    assert server_span.parent is not None
    assert server_span.parent.span_id == client.context.span_id


def test_a_secure_channel_is_traced(recorder: SpanRecorder, seen: Seen) -> None:
    with (
        grpc_support.serve(seen, credentials=grpc.local_server_credentials()) as (port, _),
        grpc.secure_channel(f"localhost:{port}", grpc.local_channel_credentials()) as channel,
    ):
        assert grpc_support.call(channel, "unary_unary") == [b"hello"]
    client, server = pair(recorder)
    assert client.attributes["server.address"] == "localhost"
    assert client.attributes["server.port"] == port
    assert server.parent is not None and server.parent.span_id == client.context.span_id


def test_the_target_names_the_server_not_the_resolved_peer(
    recorder: SpanRecorder, channel: Any
) -> None:
    port = server_port(channel)
    with grpc.insecure_channel(f"dns:///127.0.0.1:{port}") as dns_channel:
        grpc_support.call(dns_channel, "unary_unary")
    client, _ = pair(recorder)
    assert client.attributes["server.address"] == "127.0.0.1"
    assert client.attributes["server.port"] == port


def test_under_suppression_channels_and_servers_are_left_alone(
    recorder: SpanRecorder, seen: Seen
) -> None:
    with (
        suppress_instrumentation(),
        grpc_support.serve(seen) as (port, _),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        assert type(channel).__module__ == "grpc._channel"
        assert grpc_support.call(channel, "unary_unary") == [b"hello"]
    assert recorder.spans == ()
    assert "traceparent" not in seen.metadata[0]


def test_calls_made_under_suppression_on_an_instrumented_channel_make_no_span(
    recorder: SpanRecorder, channel: Any, seen: Seen
) -> None:
    with suppress_instrumentation():
        assert grpc_support.call(channel, "unary_unary") == [b"hello"]
    # the server side is another thread, not suppressed: only its span is there
    spans = wait_for_spans(recorder, 1)
    assert [span.kind for span in spans] == [SpanKind.SERVER]
    assert spans[0].parent is None
    assert "traceparent" not in seen.metadata[0]


def test_our_otlp_exporter_is_never_traced(span_recorder: SpanRecorder) -> None:
    """The exporter makes its channel and exports under suppression: no span of Export."""
    from telemetry_run.sdk.exporters.otlp.grpc import OTLPGrpcSpanExporter
    from telemetry_run.testing.otlp import OTLPReceiver

    receiver = OTLPReceiver(http=False).start()  # before instrument(): its server is plain
    instrumentor = GrpcInstrumentor()
    try:
        instrumentor.instrument(span_recorder.provider)
        exporter = OTLPGrpcSpanExporter(receiver.grpc_endpoint, timeout=WAIT)
        try:
            with span_recorder.tracer.start_as_current_span("application work"):
                pass
            (work,) = span_recorder.spans
            result = exporter.export([work], deadline=time.monotonic() + WAIT)
            assert result.success, result
            assert [span.name for span in receiver.wait_for_spans(1)] == ["application work"]
            assert type(exporter._channel).__module__ == "grpc._channel"  # not intercepted
            # a second export from a thread that has a current span: still nothing
            with span_recorder.tracer.start_as_current_span("outer"):
                assert exporter.export([work], deadline=time.monotonic() + WAIT).success
        finally:
            exporter.shutdown(deadline=time.monotonic() + WAIT)
    finally:
        instrumentor.uninstrument()
        receiver.stop()
    assert [span.name for span in span_recorder.spans] == ["application work", "outer"]


def test_uninstrument_restores_the_originals(span_recorder: SpanRecorder) -> None:
    originals = (
        grpc.insecure_channel,
        grpc.secure_channel,
        grpc.server,
        grpc.aio.insecure_channel,
        grpc.aio.secure_channel,
        grpc.aio.server,
    )
    instrumentor = GrpcInstrumentor()
    assert instrumentor.instrument(span_recorder.provider)
    assert not GrpcInstrumentor().instrument(span_recorder.provider)  # a no-op
    patched = (
        grpc.insecure_channel,
        grpc.secure_channel,
        grpc.server,
        grpc.aio.insecure_channel,
        grpc.aio.secure_channel,
        grpc.aio.server,
    )
    assert all(new is not old for new, old in zip(patched, originals, strict=True))
    assert len(instrumentor.patcher.patches) == 6
    instrumentor.uninstrument()
    restored = (
        grpc.insecure_channel,
        grpc.secure_channel,
        grpc.server,
        grpc.aio.insecure_channel,
        grpc.aio.secure_channel,
        grpc.aio.server,
    )
    assert all(new is old for new, old in zip(restored, originals, strict=True))


def test_instrumented_channels_keep_working_after_uninstrument(
    span_recorder: SpanRecorder, seen: Seen
) -> None:
    instrumentor = GrpcInstrumentor()
    instrumentor.instrument(span_recorder.provider)
    try:
        with (
            grpc_support.serve(seen) as (port, _),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            assert grpc_support.call(channel, "unary_unary") == [b"hello"]
            wait_for_spans(span_recorder, 2)
            instrumentor.uninstrument()
            span_recorder.clear()
            for kind in KINDS:
                assert grpc_support.call(channel, kind)[0].startswith(b"hello")
    finally:
        instrumentor.uninstrument()
    assert span_recorder.spans == ()
    assert "traceparent" not in seen.metadata[-1]


def test_instrumenting_twice_traces_once(span_recorder: SpanRecorder, seen: Seen) -> None:
    first, second = GrpcInstrumentor(), GrpcInstrumentor()
    first.instrument(span_recorder.provider)
    first.instrument(span_recorder.provider)
    second.instrument(span_recorder.provider)
    try:
        with (
            grpc_support.serve(seen) as (port, _),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            grpc_support.call(channel, "unary_unary")
            wait_for_spans(span_recorder, 2)
    finally:
        first.uninstrument()
    assert sorted(span.kind.name for span in span_recorder.spans) == ["CLIENT", "SERVER"]


def test_our_failure_never_reaches_the_application(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug of ours is reported and costs the span, never the call (not the span_recorder
    fixture: it fails on any internal error, and here they are the point)."""
    errors: list[InternalError] = []
    monkeypatch.setattr(get_diagnostics(), "on_internal_error", errors.append)
    recorder = SpanRecorder()
    instrumentor = GrpcInstrumentor()
    instrumentor.instrument(recorder.provider)

    def broken(method: object) -> str:
        raise RuntimeError("instrumentor bug")

    monkeypatch.setattr(_rpc, "span_name", broken)
    try:
        with (
            grpc_support.serve() as (port, _),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            for kind in KINDS:
                assert grpc_support.call(channel, kind)[0].startswith(b"hello")
            with pytest.raises(grpc.RpcError) as raised:
                grpc_support.call(channel, "unary_unary", b"abort:NOT_FOUND")
            assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    finally:
        instrumentor.uninstrument()
        recorder.shutdown()
    assert recorder.spans == ()
    places = {error.where for error in errors}
    assert places == {"grpc client: call start", "grpc server: call start"}


def test_the_returned_call_is_grpcs_own(recorder: SpanRecorder, channel: Any) -> None:
    call = channel.unary_stream(METHODS["unary_stream"])(b"hello", timeout=WAIT)
    assert type(call).__module__ == "grpc._channel"
    assert list(call) == [b"hello 0", b"hello 1", b"hello 2"]
    assert call.code() is grpc.StatusCode.OK


# -- grpc.aio -------------------------------------------------------------------------------------


def run_aio(
    seen: Seen, body: Callable[[Any], Any], *, server_kwargs: dict[str, Any] | None = None
) -> Any:
    """Run ``body(channel)`` against an aio server on 127.0.0.1, both made instrumented."""

    async def main() -> Any:
        server = grpc.aio.server(**(server_kwargs or {}))
        server.add_generic_rpc_handlers((grpc_support.aio_handler(seen),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await body(channel)
        finally:
            await server.stop(None)

    return asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_aio_each_kind_makes_linked_spans(recorder: SpanRecorder, seen: Seen, kind: str) -> None:
    responses = run_aio(seen, lambda channel: grpc_support.aio_call(channel, kind))
    assert responses[0].startswith(b"hello")
    client, server = pair(recorder, NAMES[kind])
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert client.attributes["rpc.grpc.status_code"] == 0
    assert client.attributes["server.address"] == "127.0.0.1"
    assert client.attributes["rpc.method"] == METHODS[kind].rsplit("/", 1)[1]
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert server.attributes["network.peer.address"] == "127.0.0.1"
    assert seen.current_span_ids == [server.context.span_id]


def test_aio_server_span_is_current_and_streams_end_with_their_span(
    recorder: SpanRecorder, seen: Seen
) -> None:
    run_aio(seen, lambda channel: grpc_support.aio_call(channel, "unary_stream"))
    _, server = pair(recorder, NAMES["unary_stream"])
    for i in range(3):
        item = recorder.one(f"item {i}")
        assert item.parent is not None and item.parent.span_id == server.context.span_id


@pytest.mark.parametrize(("code", "server_status"), [("NOT_FOUND", "UNSET"), ("INTERNAL", "ERROR")])
def test_aio_abort(recorder: SpanRecorder, seen: Seen, code: str, server_status: str) -> None:
    async def body(channel: Any) -> grpc.StatusCode:
        try:
            await grpc_support.aio_call(channel, "unary_unary", f"abort:{code}".encode())
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        raise AssertionError("no error")

    assert run_aio(seen, body) is getattr(grpc.StatusCode, code)
    client, server = pair(recorder)
    value = getattr(grpc.StatusCode, code).value[0]
    assert client.attributes["rpc.grpc.status_code"] == value
    assert client.status.status_code is StatusCode.ERROR
    assert server.attributes["rpc.grpc.status_code"] == value
    assert server.status.status_code is StatusCode[server_status]
    assert bool(server.events) is (server_status == "ERROR")


def test_aio_handler_exception(recorder: SpanRecorder, seen: Seen) -> None:
    async def body(channel: Any) -> grpc.StatusCode:
        try:
            await grpc_support.aio_call(channel, "unary_unary", b"raise")
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        raise AssertionError("no error")

    assert run_aio(seen, body) is grpc.StatusCode.UNKNOWN
    client, server = pair(recorder)
    assert server.status.status_code is StatusCode.ERROR
    assert [event.name for event in server.events] == ["exception"]
    assert client.attributes["rpc.grpc.status_code"] == 2


def test_aio_deadline_exceeded(recorder: SpanRecorder, seen: Seen) -> None:
    async def body(channel: Any) -> grpc.StatusCode:
        try:
            await channel.unary_unary(METHODS["unary_unary"])(b"wait", timeout=0.2)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        raise AssertionError("no error")

    assert run_aio(seen, body) is grpc.StatusCode.DEADLINE_EXCEEDED
    client, server = pair(recorder)
    assert client.attributes["rpc.grpc.status_code"] == 4
    assert client.status.status_code is StatusCode.ERROR
    assert server.attributes["rpc.grpc.status_code"] == 4
    assert server.status.status_code is StatusCode.ERROR
    assert not server.events  # grpc cancelled the handler: no exception of the application


def test_aio_cancelling_a_response_stream(recorder: SpanRecorder, seen: Seen) -> None:
    async def body(channel: Any) -> grpc.StatusCode:
        call = channel.unary_stream(METHODS["unary_stream"])(b"endless", timeout=WAIT)
        assert await call.read() == b"item 0"
        assert call.cancel()
        return await call.code()

    assert run_aio(seen, body) is grpc.StatusCode.CANCELLED
    client, server = pair(recorder, NAMES["unary_stream"])
    assert client.attributes["rpc.grpc.status_code"] == 1
    assert client.status.status_code is StatusCode.ERROR
    assert server.attributes["rpc.grpc.status_code"] == 1
    assert server.status.status_code is StatusCode.UNSET and not server.events


def test_aio_callers_metadata_is_not_changed(recorder: SpanRecorder, seen: Seen) -> None:
    metadata = grpc.aio.Metadata(("x-tenant", "blue"))

    async def body(channel: Any) -> bytes:
        method = channel.unary_unary(METHODS["unary_unary"])
        return bytes(await method(b"hi", metadata=metadata, timeout=WAIT))

    assert run_aio(seen, body) == b"hi"
    assert list(metadata) == [("x-tenant", "blue")]
    assert seen.metadata[0]["x-tenant"] == "blue" and "traceparent" in seen.metadata[0]


def test_suppression_is_per_thread(recorder: SpanRecorder, channel: Any) -> None:
    """A call from another thread while this one is suppressed is traced as usual."""
    done: list[list[bytes]] = []
    with suppress_instrumentation():
        thread = threading.Thread(target=lambda: done.append(grpc_support.call(channel, KINDS[0])))
        thread.start()
        thread.join(WAIT)
    assert done == [[b"hello"]]
    pair(recorder)
