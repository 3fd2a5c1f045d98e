"""OTLP requests for the viewer's tests, built from short span descriptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

T0 = 1_700_000_000_000_000_000  # ns: every span of these tests starts at T0 + start_ms


def trace_id(n: int) -> str:
    return f"{n:032x}"


def span_id(n: int) -> str:
    return f"{n:016x}"


@dataclass
class S:
    """One span: trace ``t``, span ``s``, parent ``p`` (0: a root), times in ms from T0."""

    t: int
    s: int
    p: int = 0
    name: str = ""
    start_ms: float = 0.0
    end_ms: float = 1.0
    error: bool = False
    service: str = "shop"
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    links: list[tuple[int, int]] = field(default_factory=list)


def any_value(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, list):
        return common_pb2.AnyValue(
            array_value=common_pb2.ArrayValue(values=[any_value(v) for v in value])
        )
    if isinstance(value, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=key_values(value)))
    return common_pb2.AnyValue(string_value=str(value))


def key_values(attributes: dict[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def _ns(ms: float) -> int:
    return T0 + round(ms * 1_000_000)


def proto_span(spec: S) -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=bytes.fromhex(trace_id(spec.t)),
        span_id=bytes.fromhex(span_id(spec.s)),
        parent_span_id=bytes.fromhex(span_id(spec.p)) if spec.p else b"",
        name=spec.name or f"span-{spec.s}",
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=_ns(spec.start_ms),
        end_time_unix_nano=_ns(spec.end_ms),
        attributes=key_values(spec.attributes),
        events=[
            trace_pb2.Span.Event(name=name, time_unix_nano=_ns(at), attributes=key_values(attrs))
            for name, at, attrs in spec.events
        ],
        links=[
            trace_pb2.Span.Link(
                trace_id=bytes.fromhex(trace_id(t)), span_id=bytes.fromhex(span_id(s))
            )
            for t, s in spec.links
        ],
        status=trace_pb2.Status(
            code=trace_pb2.Status.STATUS_CODE_ERROR if spec.error else 0,
            message="it broke" if spec.error else "",
        ),
    )


def request(*specs: S) -> trace_service_pb2.ExportTraceServiceRequest:
    """One ResourceSpans per service, in the order the services first appear."""
    by_service: dict[str, list[S]] = {}
    for spec in specs:
        by_service.setdefault(spec.service, []).append(spec)
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource={"attributes": key_values({"service.name": service, "host.name": "h1"})},
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        scope=common_pb2.InstrumentationScope(name="tests", version="1.0"),
                        spans=[proto_span(spec) for spec in group],
                    )
                ],
            )
            for service, group in by_service.items()
        ]
    )
