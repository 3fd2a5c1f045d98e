"""The OTLP encoder: every field of every span shape round-trips through the official decoder.

Spans are real ones, made by our TracerProvider from plans hypothesis draws. The oracle is
written from the .proto definitions (field by field, enum names from the generated module), not
from the encoder; the encoder's output must also be byte for byte what protobuf itself writes for
the decoded message, its JSON form must parse (``json_format``) to the same message, and the
peer's encoder (opentelemetry-exporter-otlp-proto-common) must agree on the same span data.
"""

from __future__ import annotations

import base64
import enum
import itertools
import json
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

from telemetry_run.sdk import Diagnostics, Resource, SpanLimits, SpanProcessor, TracerProvider
from telemetry_run.sdk.context import Context
from telemetry_run.sdk.exporters.otlp import _encode
from telemetry_run.sdk.exporters.otlp._encode import encode_request, encode_request_json
from telemetry_run.sdk.trace import ReadableSpan, Tracer
from telemetry_run.sdk.trace.api import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
)
from telemetry_run.sdk.trace.current import set_span_in_context
from telemetry_run.sdk.trace.sampling import ALWAYS_ON, Decision, StaticSampler
from telemetry_run.sdk.trace.span import compact_attributes

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
U64_MAX = (1 << 64) - 1
U128_MAX = (1 << 128) - 1
HAS_IS_REMOTE = trace_pb2.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
IS_REMOTE = trace_pb2.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
RECORD_ONLY = StaticSampler(Decision.RECORD_ONLY)  # recording spans with trace flags 00


class Collect(SpanProcessor):
    """Every ended span, sampled or not (the export processors keep only sampled ones)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


# -- the oracle: what the decoded message must hold, from the .proto definitions ----------------


def tagged(value: object) -> object:
    """A value with its type made explicit and floats as their bits (NaN, -0.0 compare exactly)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("double", struct.pack("<d", value))
    if isinstance(value, str):
        return ("string", value)
    assert isinstance(value, tuple), value
    return ("array", tuple(tagged(v) for v in value))


def decoded_value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return ("array", tuple(decoded_value(v) for v in value.array_value.values))
    assert kind in ("string_value", "bool_value", "int_value", "double_value"), kind
    raw = getattr(value, kind)
    return (kind[:-6], struct.pack("<d", raw) if kind == "double_value" else raw)


def decoded_attributes(attributes: Sequence[KeyValue]) -> dict[str, object]:
    result = {kv.key: decoded_value(kv.value) for kv in attributes}
    assert len(result) == len(attributes), "a key appears twice"
    return result


def expected_attributes(attributes: Mapping[str, object]) -> dict[str, object]:
    return {key: tagged(value) for key, value in attributes.items()}


def id_bytes(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


def id_int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def check_span(message: trace_pb2.Span, span: ReadableSpan) -> None:
    """Every field of ``opentelemetry.proto.trace.v1.Span`` against the span it came from."""
    assert message.trace_id == id_bytes(span.trace_id, 16)
    assert message.span_id == id_bytes(span.span_id, 8)
    assert message.trace_state == span.context.trace_state.to_header()
    parent = span.parent
    assert message.parent_span_id == (id_bytes(parent.span_id, 8) if parent else b"")
    assert message.name == span.name
    assert trace_pb2.Span.SpanKind.Name(message.kind) == f"SPAN_KIND_{span.kind.name}"
    assert message.start_time_unix_nano == span.start_time
    assert message.end_time_unix_nano == span.end_time
    assert decoded_attributes(message.attributes) == expected_attributes(span.attributes)
    assert message.dropped_attributes_count == span.dropped_attributes

    assert len(message.events) == len(span.events)
    for got, event in zip(message.events, span.events, strict=True):
        assert got.time_unix_nano == event.timestamp
        assert got.name == event.name
        assert decoded_attributes(got.attributes) == expected_attributes(event.attributes)
        assert got.dropped_attributes_count == event.dropped_attributes
    assert message.dropped_events_count == span.dropped_events

    assert len(message.links) == len(span.links)
    for got_link, link in zip(message.links, span.links, strict=True):
        ctx = link.context
        assert got_link.trace_id == id_bytes(ctx.trace_id, 16)
        assert got_link.span_id == id_bytes(ctx.span_id, 8)
        assert got_link.trace_state == ctx.trace_state.to_header()
        assert decoded_attributes(got_link.attributes) == expected_attributes(link.attributes)
        assert got_link.dropped_attributes_count == link.dropped_attributes
        remote = IS_REMOTE if ctx.is_remote else 0
        assert got_link.flags == int(ctx.trace_flags) | HAS_IS_REMOTE | remote
    assert message.dropped_links_count == span.dropped_links

    code = span.status.status_code
    assert trace_pb2.Status.StatusCode.Name(message.status.code) == f"STATUS_CODE_{code.name}"
    description = span.status.description if code is StatusCode.ERROR else None
    assert message.status.message == (description or "")

    remote = IS_REMOTE if parent is not None and parent.is_remote else 0
    assert message.flags == int(span.trace_flags) | HAS_IS_REMOTE | remote


def same_scope(a: Any, b: Any) -> bool:
    return (a.name, a.version or "", a.schema_url or "", dict(a.attributes)) == (
        b.name,
        b.version or "",
        b.schema_url or "",
        dict(b.attributes),
    )


def check_request(data: bytes, spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """Decode ``data`` and hold it against ``spans``: fields, grouping, order, canonical bytes."""
    request = ExportTraceServiceRequest.FromString(data)
    # Exactly the bytes protobuf writes for this message (field order, minimal varints, zero
    # values left out): a receiver cannot tell us from the generated code.
    assert request.SerializeToString(deterministic=True) == data

    by_key = {(s.trace_id, s.span_id): s for s in spans}
    assert len(by_key) == len(spans), "span ids must be unique for this check"
    position = {key: i for i, key in enumerate(by_key)}
    seen = 0
    resources = []
    for resource_spans in request.resource_spans:
        scopes = []
        resource = None
        for scope_spans in resource_spans.scope_spans:
            scope = None
            last = -1
            for message in scope_spans.spans:
                key = (
                    int.from_bytes(message.trace_id, "big"),
                    int.from_bytes(message.span_id, "big"),
                )
                span = by_key[key]
                check_span(message, span)
                seen += 1
                # The span sits under its own resource and scope, once for equal ones...
                resource = resource or span.resource
                assert span.resource == resource
                scope = scope or span.instrumentation_scope
                assert same_scope(span.instrumentation_scope, scope)
                # ...and a scope's spans keep their order in the batch.
                assert position[key] > last
                last = position[key]
            assert scope is not None, "an empty ScopeSpans"
            check_scope(scope_spans, scope)
            assert not any(same_scope(scope, known) for known in scopes), "scope not merged"
            scopes.append(scope)
        assert resource is not None, "an empty ResourceSpans"
        check_resource(resource_spans, resource)
        assert resource not in resources, "equal resources not merged"
        resources.append(resource)
    assert seen == len(spans)
    return request


def check_resource(message: ResourceSpans, resource: Resource) -> None:
    assert message.HasField("resource")
    assert decoded_attributes(message.resource.attributes) == expected_attributes(
        resource.attributes
    )
    assert message.resource.dropped_attributes_count == 0
    assert message.schema_url == resource.schema_url


def check_scope(message: ScopeSpans, scope: Any) -> None:
    assert message.HasField("scope")
    assert message.scope.name == scope.name
    assert message.scope.version == (scope.version or "")
    assert decoded_attributes(message.scope.attributes) == expected_attributes(scope.attributes)
    assert message.schema_url == (scope.schema_url or "")


# -- OTLP/JSON ------------------------------------------------------------------------------


def strict_json(data: bytes) -> Any:
    """RFC 8259 JSON: NaN and Infinity are not JSON, so the encoder must spell them as strings."""

    def reject(constant: str) -> NoReturn:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(data, parse_constant=reject)


def ids_to_base64(document: Any) -> Any:
    """Undo OTLP's one deviation that the protobuf JSON parser does not know: hex ids."""
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for item in [span, *span.get("links", ())]:
                    for name in ("traceId", "spanId", "parentSpanId"):
                        if name in item:
                            size = 16 if name == "traceId" else 8
                            assert item[name] == item[name].lower()
                            assert len(item[name]) == 2 * size
                            raw = bytes.fromhex(item[name])
                            item[name] = base64.b64encode(raw).decode()
    return document


def check_json(spans: Sequence[ReadableSpan], request: ExportTraceServiceRequest) -> None:
    document = ids_to_base64(strict_json(encode_request_json(spans)))
    parsed = json_format.ParseDict(document, ExportTraceServiceRequest())
    # As dicts: NaN compares equal to NaN there ("NaN"), and JSON has one NaN only.
    assert json_format.MessageToDict(parsed) == json_format.MessageToDict(request)


# -- span plans -----------------------------------------------------------------------------

# Long strings come from a fixed few: what matters is their length (two- and three-byte varints).
LONG_TEXTS = ["a" * 126, "é" * 64, "長" * 50, "z" * 20_000]
texts = st.text(max_size=10) | st.sampled_from(LONG_TEXTS)
ints = st.integers(INT64_MIN, INT64_MAX) | st.sampled_from(
    [0, 1, 127, 128, 16383, 16384, -1, -128, INT64_MIN, INT64_MIN + 1, INT64_MAX - 1, INT64_MAX]
)
floats = st.floats(allow_nan=True, allow_infinity=True)  # also -0.0 and subnormals


def arrays(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(elements | st.none(), max_size=3).map(tuple)


values = st.one_of(
    texts,
    st.booleans(),
    ints,
    floats,
    arrays(texts),
    arrays(st.booleans()),
    arrays(ints),
    arrays(floats),
)
keys = st.text(min_size=1, max_size=8) | st.sampled_from(["http.route", "k" * 130])
attributes = st.dictionaries(keys, values, max_size=5)
few_attributes = st.dictionaries(keys, values, max_size=2)
trace_states = st.lists(
    st.tuples(
        st.sampled_from(["a", "congo", "rojo", "k0-_*/", "tenant@vendor"]),
        st.sampled_from(["1", "t61rcWkgMzE", "00f067aa0ba902b7", "x y"]),
    ),
    max_size=3,
).map(TraceState)


def span_contexts(lowest: int) -> st.SearchStrategy[SpanContext]:
    """``lowest`` 0: invalid contexts too (a link keeps one that has attributes)."""
    return st.builds(
        SpanContext,
        trace_id=st.integers(lowest, U128_MAX) | st.sampled_from([1, U128_MAX, 1 << 64]),
        span_id=st.integers(lowest, U64_MAX) | st.sampled_from([1, U64_MAX]),
        is_remote=st.booleans(),
        trace_flags=st.integers(0, 255).map(TraceFlags),
        trace_state=trace_states,
    )


times = st.integers(0, U64_MAX) | st.sampled_from([0, 1, U64_MAX, 1_700_000_000_000_000_000])
statuses = st.sampled_from([None, StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR])


@dataclass
class SpanPlan:
    tracer: int  # index into the batch's tracers (modulo)
    name: str
    kind: SpanKind
    start: int
    end: int
    parent: SpanContext | str | None  # "recording": a recording parent span of the same tracer
    attributes: dict[str, Any]
    more_attributes: dict[str, Any]  # set after start, through set_attribute
    events: list[tuple[str, dict[str, Any], int]]
    start_links: list[tuple[SpanContext, dict[str, Any]]]
    added_links: list[tuple[SpanContext, dict[str, Any]]]
    status: StatusCode | None
    description: str | None


span_plans = st.builds(
    SpanPlan,
    tracer=st.integers(0, 8),
    name=texts,
    kind=st.sampled_from(SpanKind),
    start=times,
    end=times,
    parent=st.none() | span_contexts(1) | st.just("recording"),
    attributes=attributes,
    more_attributes=few_attributes,
    events=st.lists(st.tuples(texts, few_attributes, times), max_size=3),
    start_links=st.lists(st.tuples(span_contexts(0), few_attributes), max_size=2),
    added_links=st.lists(st.tuples(span_contexts(0), few_attributes), max_size=2),
    status=statuses,
    description=st.none() | texts,
)


@dataclass
class ProviderPlan:
    resource: Resource
    sampler_record_only: bool
    limits: SpanLimits
    scopes: list[tuple[str, str | None, str | None, dict[str, Any]]] = field(default_factory=list)


small_limits = st.builds(
    SpanLimits,
    max_attributes=st.integers(0, 6),
    max_events=st.integers(0, 3),
    max_links=st.integers(0, 3),
    max_event_attributes=st.integers(0, 4),
    max_link_attributes=st.integers(0, 4),
)
# A few fixed resources, so that equal (not identical) resources in one batch are common.
resources = (
    st.sampled_from(
        [{}, {"service.name": "checkout"}, {"service.name": "checkout", "pid": 7, "tags": ("a",)}]
    ).map(dict)
    | attributes
)
provider_plans = st.builds(
    ProviderPlan,
    resource=st.builds(Resource, resources, st.sampled_from(["", "https://schemas/1.2"])),
    sampler_record_only=st.booleans(),
    limits=st.just(SpanLimits()) | small_limits,
    scopes=st.lists(
        st.tuples(
            st.sampled_from(["", "lib", "other"]) | texts,
            st.none() | st.sampled_from(["", "1.0"]),
            st.none() | st.sampled_from(["", "https://schemas/1.0"]),
            few_attributes,
        ),
        min_size=1,
        max_size=2,
    ),
)


class SequentialIds:
    """Unique ids from a drawn start, wrapping inside the valid range (edges included)."""

    def __init__(self, start: int) -> None:
        self._counter = itertools.count(start)

    def generate_span_id(self) -> int:
        return next(self._counter) % U64_MAX + 1

    def generate_trace_id(self) -> int:
        return (next(self._counter) * 0x9E3779B97F4A7C15) % U128_MAX + 1


def run_plan(
    providers: list[ProviderPlan], plans: list[SpanPlan], id_start: int
) -> list[ReadableSpan]:
    """Make the planned spans; return every ended span, in end order."""
    diagnostics = Diagnostics()
    errors: list[object] = []
    diagnostics.on_internal_error = errors.append
    collect = Collect()
    ids = SequentialIds(id_start)
    tracers: list[Tracer] = []
    for plan in providers:
        provider = TracerProvider(
            resource=plan.resource,
            sampler=RECORD_ONLY if plan.sampler_record_only else ALWAYS_ON,
            span_limits=plan.limits,
            id_generator=ids,
            diagnostics=diagnostics,
            shutdown_on_exit=False,
        )
        provider.add_span_processor(collect)
        for name, version, schema_url, scope_attributes in plan.scopes:
            tracers.append(provider.get_tracer(name, version, schema_url, scope_attributes))

    for plan in plans:
        tracer = tracers[plan.tracer % len(tracers)]
        context: Context | None = Context()
        if isinstance(plan.parent, SpanContext):
            context = set_span_in_context(NonRecordingSpan(plan.parent), Context())
        elif plan.parent == "recording":
            parent = tracer.start_span("parent", context=Context(), start_time=plan.start)
            context = set_span_in_context(parent, Context())
        span = tracer.start_span(
            plan.name,
            context=context,
            kind=plan.kind,
            attributes=plan.attributes,
            links=[Link(ctx, attrs) for ctx, attrs in plan.start_links],
            start_time=plan.start,
        )
        span.set_attributes(plan.more_attributes)
        for name, event_attributes, timestamp in plan.events:
            span.add_event(name, event_attributes, timestamp)
        for ctx, link_attributes in plan.added_links:
            span.add_link(ctx, link_attributes)
        if plan.status is not None:
            span.set_status(plan.status, plan.description)
        span.end(plan.end)
        if plan.parent == "recording":
            parent.end(plan.end)
    assert not errors
    return collect.spans


@st.composite
def batches(draw: st.DrawFn) -> list[ReadableSpan]:
    providers = draw(st.lists(provider_plans, min_size=1, max_size=3))
    plans = draw(st.lists(span_plans, min_size=1, max_size=5))
    spans = run_plan(providers, plans, draw(st.integers(0, U128_MAX)))
    return draw(st.permutations(spans))  # interleave resources and scopes


# -- properties -------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_every_field_round_trips_through_the_official_decoder(spans: list[ReadableSpan]) -> None:
    request = check_request(encode_request(spans), spans)
    check_json(spans, request)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.data())
def test_spans_compacted_in_a_backlog_encode_to_the_same_bytes(
    spans: list[ReadableSpan], data: st.DataObject
) -> None:
    """A span the batch processor compacted (it waited in a backlog) exports unchanged."""
    before = encode_request(spans)
    before_json = encode_request_json(spans)
    attributes = [dict(span.attributes) for span in spans]
    for span in data.draw(st.lists(st.sampled_from(spans), unique_by=id)):
        compact_attributes(span)
        assert type(span._attributes) is tuple
    assert encode_request(spans) == before
    assert encode_request_json(spans) == before_json
    assert [dict(span.attributes) for span in spans] == attributes


def test_compacted_spans_with_the_same_keys_share_them(make_tracer: Any) -> None:
    tracer = make_tracer()
    for value in ("a", "b"):
        with tracer.start_as_current_span("same keys") as span:
            span.set_attributes({"x": value, "y": 1})
    with tracer.start_as_current_span("keys in another order") as span:
        span.set_attributes({"y": 2, "x": "c"})
    spans = make_tracer.spans()
    for span in spans:
        compact_attributes(span)
    first, second, other = (span._attributes for span in spans)
    assert first[-1] is second[-1] and first[-1] == ("x", "y")
    assert other[-1] == ("y", "x")
    check_request(encode_request(spans), spans)
    assert [dict(span.attributes) for span in spans] == [
        {"x": "a", "y": 1},
        {"x": "b", "y": 1},
        {"y": 2, "x": "c"},
    ]


def peer_spans(spans: Sequence[ReadableSpan]) -> list[Any]:
    """The same span data as opentelemetry-sdk ReadableSpans, for the peer's encoder."""
    from opentelemetry import trace as peer_trace
    from opentelemetry.sdk.resources import Resource as PeerResource
    from opentelemetry.sdk.trace import Event as PeerEvent
    from opentelemetry.sdk.trace import ReadableSpan as PeerSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope as PeerScope

    def context(ctx: SpanContext) -> peer_trace.SpanContext:
        return peer_trace.SpanContext(
            ctx.trace_id,
            ctx.span_id,
            ctx.is_remote,
            peer_trace.TraceFlags(ctx.trace_flags),
            peer_trace.TraceState(list(ctx.trace_state.items())),
        )

    resources: dict[int, PeerResource] = {}
    scopes: dict[int, PeerScope] = {}
    converted = []
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        if id(resource) not in resources:
            resources[id(resource)] = PeerResource(dict(resource.attributes), resource.schema_url)
        if id(scope) not in scopes:
            scopes[id(scope)] = PeerScope(
                scope.name, scope.version, scope.schema_url, dict(scope.attributes)
            )
        converted.append(
            PeerSpan(
                name=span.name,
                context=context(span.context),
                parent=context(span.parent) if span.parent is not None else None,
                resource=resources[id(resource)],
                attributes=dict(span.attributes),
                events=[
                    PeerEvent(e.name, dict(e.attributes), e.timestamp, limit=None)
                    for e in span.events
                ],
                links=[
                    peer_trace.Link(context(link.context), dict(link.attributes))
                    for link in span.links
                ],
                kind=peer_trace.SpanKind[span.kind.name],
                status=peer_trace.Status(
                    peer_trace.StatusCode[span.status.status_code.name], span.status.description
                ),
                start_time=span.start_time,
                end_time=span.end_time,
                instrumentation_scope=scopes[id(scope)],
            )
        )
    return converted


def comparable(message: Any) -> Any:
    """A message as a dict with its attribute lists sorted by key (OTLP gives them no order)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            if isinstance(out.get("attributes"), list):
                out["attributes"] = sorted(out["attributes"], key=lambda kv: kv["key"])
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(json_format.MessageToDict(message))


def without_peer_gaps(span: trace_pb2.Span) -> trace_pb2.Span:
    """Clear what the peer does not write (or cannot know from outside its SDK).

    The peer leaves the W3C trace flags out of ``flags`` (bits 0-7) and the trace state out of
    links, writes an UNSET status as an empty Status message, and reads dropped counts from its
    own bounded containers, which a ReadableSpan built from plain data does not have.
    """
    copy = trace_pb2.Span()
    copy.CopyFrom(span)
    copy.flags &= HAS_IS_REMOTE | IS_REMOTE
    for link in copy.links:
        link.flags &= HAS_IS_REMOTE | IS_REMOTE
        link.trace_state = ""
        link.dropped_attributes_count = 0
    for event in copy.events:
        event.dropped_attributes_count = 0
    copy.dropped_attributes_count = 0
    copy.dropped_events_count = 0
    copy.dropped_links_count = 0
    if copy.status.code == 0 and not copy.status.message:
        copy.ClearField("status")
    return copy


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_the_peer_encoder_agrees_on_the_same_span_data(spans: list[ReadableSpan]) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    ours = ExportTraceServiceRequest.FromString(encode_request(spans))
    theirs = encode_spans(peer_spans(spans))
    assert len(ours.resource_spans) <= len(theirs.resource_spans)  # it merges by hash only

    def index(request: ExportTraceServiceRequest) -> dict[bytes, Any]:
        found = {}
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    resource = (comparable(rs.resource), rs.schema_url)
                    scope = (comparable(ss.scope), ss.schema_url)
                    found[span.span_id] = (resource, scope, comparable(without_peer_gaps(span)))
        return found

    ours_by_id, theirs_by_id = index(ours), index(theirs)
    assert ours_by_id.keys() == theirs_by_id.keys()
    for span_id, (resource, scope, span) in ours_by_id.items():
        their_resource, their_scope, their_span = theirs_by_id[span_id]
        assert resource == their_resource
        assert scope == their_scope
        assert span == their_span


# -- shapes hypothesis rarely reaches ---------------------------------------------------------


@pytest.fixture
def make_tracer(diagnostics: Diagnostics) -> Iterator[Any]:
    collect = Collect()
    providers: list[TracerProvider] = []

    def make(
        resource: Resource | None = None,
        scope: str = "test",
        version: str | None = "1.0",
        sampler: Any = ALWAYS_ON,
        scope_attributes: dict[str, Any] | None = None,
    ) -> Tracer:
        provider = TracerProvider(
            resource=resource or Resource({"service.name": "test"}),
            sampler=sampler,
            diagnostics=diagnostics,
            shutdown_on_exit=False,
        )
        provider.add_span_processor(collect)
        providers.append(provider)
        return provider.get_tracer(scope, version, None, scope_attributes)

    make.spans = lambda: list(collect.spans)  # type: ignore[attr-defined]
    yield make
    for provider in providers:
        provider.shutdown(timeout=1)


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_request([]) == b""
    assert ExportTraceServiceRequest.FromString(b"") == ExportTraceServiceRequest()
    assert strict_json(encode_request_json([])) == {"resourceSpans": []}


def test_span_flags_carry_trace_flags_and_whether_the_parent_is_remote(make_tracer: Any) -> None:
    tracer = make_tracer()
    record_only = make_tracer(sampler=RECORD_ONLY)
    remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(1))
    remote_random = SpanContext(0xABC, 0xDEF, True, TraceFlags(3))
    remote_unknown = SpanContext(0xABC, 0xDEF, True, TraceFlags(0xFD))
    local = SpanContext(0xABC, 0xDEF, False, TraceFlags(1))
    tracer.start_span("root", context=Context()).end(2)
    tracer.start_span("remote child", set_span_in_context(NonRecordingSpan(remote))).end(2)
    for name, parent in (("random", remote_random), ("unknown bits", remote_unknown)):
        tracer.start_span(name, set_span_in_context(NonRecordingSpan(parent))).end(2)
    tracer.start_span("local child", set_span_in_context(NonRecordingSpan(local))).end(2)
    record_only.start_span("unsampled root", context=Context()).end(2)
    spans = make_tracer.spans()
    request = check_request(encode_request(spans), spans)
    flags = {
        s.name: s.flags for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
    }
    # Bits 0-7: the span's W3C flags, sampled (0x01) and random-trace-id (0x02, set on the
    # trace ids we mint, inherited otherwise; unknown bits are not carried on); bits 8-9: the
    # parent's is-remote, known (SpanFlags in opentelemetry-proto's trace.proto).
    assert flags == {
        "root": 0x103,
        "remote child": 0x301,
        "random": 0x303,
        "unknown bits": 0x301,
        "local child": 0x101,
        "unsampled root": 0x102,
    }


def test_lone_surrogates_become_replacement_characters(make_tracer: Any) -> None:
    """Protobuf strings are UTF-8; one bad string must not make the receiver drop the batch."""
    bad = "file-\udcff.txt"
    tracer = make_tracer(resource=Resource({"path": bad}))
    span = tracer.start_span(bad, context=Context(), attributes={bad: bad, "list": (bad, None)})
    span.add_event(bad, {"k": bad})
    span.set_status(StatusCode.ERROR, bad)
    span.end()
    fixed = "file-\ufffd.txt"
    request = ExportTraceServiceRequest.FromString(encode_request(make_tracer.spans()))
    (resource_spans,) = request.resource_spans
    (message,) = resource_spans.scope_spans[0].spans
    assert resource_spans.resource.attributes[0].value.string_value == fixed
    assert message.name == fixed
    assert message.attributes[0].key == fixed
    assert message.attributes[0].value.string_value == fixed
    assert message.attributes[1].value.array_value.values[0].string_value == fixed
    assert message.events[0].name == fixed
    assert message.events[0].attributes[0].value.string_value == fixed
    assert message.status.message == fixed
    document = strict_json(encode_request_json(make_tracer.spans()))
    assert document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] == fixed


def test_long_values_take_multi_byte_lengths(make_tracer: Any) -> None:
    tracer = make_tracer()
    huge = "é" * 40_000  # 80,000 bytes: a three-byte length, inside a span of more than 64 KiB
    span = tracer.start_span("x" * 200, context=Context(), start_time=1)
    span.set_attribute("huge", huge)
    span.set_attribute("k" * 300, "v" * 127)
    for i in range(300):
        span.set_attribute(f"attribute.{i}", i * 1000)
    span.add_event("e" * 130, {"big": "b" * 20_000}, timestamp=5)
    span.end(10)
    spans = make_tracer.spans()
    check_request(encode_request(spans), spans)


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


def test_resource_and_scope_attributes_are_cleaned_like_span_attributes(
    make_tracer: Any,
) -> None:
    """Nothing checks a Resource's or a scope's attributes when they are made: the encoder does."""
    messy: dict[Any, Any] = {
        "list": [1, 2],
        "enum": Color.RED,
        "name": Name("x"),
        "big": 1 << 70,
        "object": object(),
        "mixed": (1, "a"),
        "nested": ((1,),),
        "with_none": [None, 2.5],
        7: "a non-string key",
        "": "an empty key",
    }
    tracer = make_tracer(resource=Resource(messy), scope_attributes=messy)
    tracer.start_span("s", context=Context()).end()
    spans = make_tracer.spans()
    expected = {
        "list": ("array", (("int", 1), ("int", 2))),
        "enum": ("int", 1),
        "name": ("string", "x"),
        "with_none": ("array", (None, ("double", struct.pack("<d", 2.5)))),
        "7": ("string", "a non-string key"),
        "": ("string", "an empty key"),
    }
    data = encode_request(spans)
    request = ExportTraceServiceRequest.FromString(data)
    assert request.SerializeToString(deterministic=True) == data
    (resource_spans,) = request.resource_spans
    assert decoded_attributes(resource_spans.resource.attributes) == expected
    assert decoded_attributes(resource_spans.scope_spans[0].scope.attributes) == expected
    check_json(spans, request)


def test_equal_resources_and_scopes_share_one_block(make_tracer: Any) -> None:
    first = make_tracer(resource=Resource({"service.name": "a"}), scope="lib")
    second = make_tracer(resource=Resource({"service.name": "a"}), scope="lib")  # equal, not same
    newer = make_tracer(resource=Resource({"service.name": "a"}), scope="lib", version="2.0")
    other = make_tracer(resource=Resource({"service.name": "b"}), scope="lib")
    for i, tracer in enumerate([first, other, second, newer, first, second] * 2):
        tracer.start_span(f"span {i}", context=Context()).end()
    spans = make_tracer.spans()
    request = check_request(encode_request(spans), spans)
    layout = [
        [(ss.scope.version, [s.name for s in ss.spans]) for ss in rs.scope_spans]
        for rs in request.resource_spans
    ]
    assert layout == [
        [
            (
                "1.0",
                ["span 0", "span 2", "span 4", "span 5", "span 6", "span 8", "span 10", "span 11"],
            ),
            ("2.0", ["span 3", "span 9"]),
        ],
        [("1.0", ["span 1", "span 7"])],
    ]


def test_the_key_cache_stays_bounded(make_tracer: Any) -> None:
    tracer = make_tracer()
    for batch in range(3):
        span = tracer.start_span("many keys", context=Context())
        for i in range(_encode._MAX_KEY_PREFIXES // 2 + 7):
            span.set_attribute(f"key.{batch}.{i}", i)
        span.end()
    spans = make_tracer.spans()
    for span in spans:
        check_request(encode_request([span]), [span])
        assert len(_encode._KEY_PREFIXES) <= _encode._MAX_KEY_PREFIXES


def test_repeated_values_of_one_key_keep_their_types(make_tracer: Any) -> None:
    """The encoder reuses a repeated value's bytes: True, 1, 1.0 and "1" are equal keys of a
    dict, and each must still come out as its own type."""
    tracer = make_tracer()
    for _ in range(2):  # the second round is served from what the first one left
        for value in (True, 1, 1.0, "1", False, 0, 0.0, "", 300, -1):
            with tracer.start_as_current_span("typed", context=Context()) as span:
                span.set_attribute("same.key", value)
                span.add_event("e", {"same.key": value})
    spans = make_tracer.spans()
    request = check_request(encode_request(spans), spans)
    decoded = [
        decoded_value(s.attributes[0].value)
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert decoded == [tagged(span.attributes["same.key"]) for span in spans]


def test_the_repeated_value_cache_stays_bounded(make_tracer: Any) -> None:
    """Values that never repeat (ids, paths) fill neither one key's table nor the whole cache."""
    tracer = make_tracer()
    per_key = _encode._MAX_VALUES_PER_KEY
    keys = _encode._MAX_CACHED_VALUES // per_key + 10  # enough to pass the bound in all
    for i in range(per_key + 5):
        for first in range(0, keys, 100):
            with tracer.start_as_current_span("many values", context=Context()) as span:
                for k in range(first, min(first + 100, keys)):
                    span.set_attribute(f"request.id.{k}", f"id-{i}")
    spans = make_tracer.spans()
    check_request(encode_request(spans), spans)
    tables = [table for pair in _encode._KEY_VALUES.values() for table in pair]
    assert all(len(table) <= per_key for table in tables)
    assert sum(map(len, tables)) <= _encode._MAX_CACHED_VALUES
    check_request(encode_request(spans), spans)  # again, partly from the cache: still right


def test_json_follows_the_otlp_json_rules(make_tracer: Any) -> None:
    """Hex ids, enums as integers, 64-bit integers as strings, lowerCamelCase, no bare NaN."""
    tracer = make_tracer()
    parent = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7, True, TraceFlags(1)
    )
    span = tracer.start_span(
        "GET /",
        set_span_in_context(NonRecordingSpan(parent)),
        kind=SpanKind.SERVER,
        start_time=1_700_000_000_000_000_000,
        attributes={"n": -5, "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "a": (1, None)},
    )
    span.add_link(SpanContext(1, 2, False, TraceFlags(0), TraceState([("k", "v")])), {"x": True})
    span.set_status(StatusCode.ERROR, "bad")
    span.end(1_700_000_000_000_000_500)
    document = strict_json(encode_request_json(make_tracer.spans()))
    (message,) = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert message["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert message["parentSpanId"] == "00f067aa0ba902b7"
    assert len(message["spanId"]) == 16
    assert message["kind"] == 2
    assert message["flags"] == 0x301
    assert message["startTimeUnixNano"] == "1700000000000000000"
    assert message["endTimeUnixNano"] == "1700000000000000500"
    assert message["status"] == {"code": 2, "message": "bad"}
    values = {kv["key"]: kv["value"] for kv in message["attributes"]}
    assert values == {
        "n": {"intValue": "-5"},
        "nan": {"doubleValue": "NaN"},
        "inf": {"doubleValue": "Infinity"},
        "ninf": {"doubleValue": "-Infinity"},
        "a": {"arrayValue": {"values": [{"intValue": "1"}, {}]}},
    }
    (link,) = message["links"]
    assert link == {
        "traceId": f"{1:032x}",
        "spanId": f"{2:016x}",
        "traceState": "k=v",
        "attributes": [{"key": "x", "value": {"boolValue": True}}],
        "flags": 0x100,
    }

    def keys(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key != "attributes":
                    yield key
                yield from keys(value)
        elif isinstance(node, list):
            for item in node:
                yield from keys(item)

    assert all("_" not in key for key in keys(document))
