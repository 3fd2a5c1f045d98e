"""OTLP protobuf spans as plain, JSON-ready records, with every field the viewer shows capped.

A sender is anyone who can reach the port: strings, attribute counts, events and links are cut
at fixed limits here so one request cannot make a stored span arbitrarily large.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = ["MAX_ITEMS", "MAX_STRING", "SpanRecord", "decode_request"]

#: The longest string kept (attribute values, names, messages); longer ones end with "…".
MAX_STRING = 4096
#: Attributes, events and links kept per span (and attributes per event or link).
MAX_ITEMS = 128
_MAX_DEPTH = 4  # nested arrays and maps

_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}

#: One span: ``trace_id``, ``span_id``, ``parent_span_id`` (hex, "" for a root), ``name``,
#: ``kind``, ``start``/``end`` (Unix ns), ``status`` (``code``, ``message``), ``attributes``,
#: ``events``, ``links``, ``resource`` (attributes), ``service``, ``scope``.
SpanRecord = dict[str, Any]


def _text(value: str) -> str:
    return value if len(value) <= MAX_STRING else value[: MAX_STRING - 1] + "…"


def _value(value: common_pb2.AnyValue, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _text(value.string_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":  # JSON has no NaN or infinities: those are shown as text
        number = value.double_value
        return number if math.isfinite(number) else str(number)
    if kind == "int_value":
        return value.int_value
    if kind == "bytes_value":
        return _text(base64.b64encode(value.bytes_value).decode())
    if depth >= _MAX_DEPTH:
        return "…"
    if kind == "array_value":
        return [_value(item, depth + 1) for item in value.array_value.values[:MAX_ITEMS]]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values, depth + 1)
    return None


def _attributes(pairs: Iterable[common_pb2.KeyValue], depth: int = 0) -> list[list[Any]]:
    """``[[key, value], ...]`` in the sender's order (a JSON object would lose duplicates)."""
    out: list[list[Any]] = []
    for pair in pairs:
        if len(out) == MAX_ITEMS:
            break
        out.append([_text(pair.key), _value(pair.value, depth)])
    return out


def _service(resource: list[list[Any]]) -> str:
    for key, value in resource:
        if key == "service.name" and isinstance(value, str) and value:
            return value
    return "unknown_service"


def _span(
    span: trace_pb2.Span, resource: list[list[Any]], service: str, scope: dict[str, str]
) -> SpanRecord:
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "name": _text(span.name),
        "kind": _KINDS.get(span.kind, "unspecified"),
        "start": span.start_time_unix_nano,
        "end": max(span.end_time_unix_nano, span.start_time_unix_nano),
        "status": {
            "code": _STATUS.get(span.status.code, "unset"),
            "message": _text(span.status.message),
        },
        "attributes": _attributes(span.attributes),
        "events": [
            {
                "name": _text(event.name),
                "time": event.time_unix_nano,
                "attributes": _attributes(event.attributes),
            }
            for event in span.events[:MAX_ITEMS]
        ],
        "links": [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "attributes": _attributes(link.attributes),
            }
            for link in span.links[:MAX_ITEMS]
        ],
        "resource": resource,
        "service": service,
        "scope": scope,
    }


def decode_request(
    request: trace_service_pb2.ExportTraceServiceRequest,
) -> tuple[list[SpanRecord], int]:
    """Every span of ``request`` with its resource and scope, and how many spans were left out
    because they lack a valid trace or span id (they cannot be placed in a trace)."""
    records: list[SpanRecord] = []
    invalid = 0
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = _service(resource)
        for scope_spans in resource_spans.scope_spans:
            scope = {
                "name": _text(scope_spans.scope.name),
                "version": _text(scope_spans.scope.version),
            }
            for span in scope_spans.spans:
                if not _valid_id(span.trace_id, 16) or not _valid_id(span.span_id, 8):
                    invalid += 1
                    continue
                records.append(_span(span, resource, service, scope))
    return records, invalid


def _valid_id(value: bytes, size: int) -> bool:
    return len(value) == size and any(value)
