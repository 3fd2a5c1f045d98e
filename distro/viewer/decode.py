"""OTLP protobuf spans as compact records, and their details as JSON-ready values on demand.

A stored span keeps what the list and the waterfall need (ids, name, times, status, service)
and its protobuf bytes; attributes, events and links are decoded only when its trace is viewed,
so holding a span costs its encoded size and a small fixed part. A sender is anyone who can
reach the port: a span larger than ``MAX_SPAN_BYTES`` is cut down (long values shortened, then
events, links and attributes left out, in that order) before it is kept, and what is shown is
capped again (``MAX_STRING``, ``MAX_ITEMS``).
"""

from __future__ import annotations

import base64
import math
import sys
from collections.abc import Iterable, MutableSequence
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "MAX_ITEMS",
    "MAX_SPAN_BYTES",
    "MAX_STRING",
    "SpanRecord",
    "decode_request",
    "span_details",
]

#: The longest string shown (attribute values, names, messages); longer ones end with "…".
MAX_STRING = 4096
#: Attributes, events and links shown per span (and attributes per event or link).
MAX_ITEMS = 128
#: The largest encoded span kept as it came; a larger one is cut down to this.
MAX_SPAN_BYTES = 64 * 1024
_MAX_DEPTH = 4  # nested arrays and maps
_RECORD_OVERHEAD = 600  # bytes: the record, its id strings and name, its place in the store

_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}

Attributes = list[tuple[str, Any]]


class SpanRecord:
    """One stored span. ``trace_id``, ``span_id`` and ``parent_span_id`` are hex ("" for no
    parent), ``start``/``end`` Unix ns, ``status`` "unset", "ok" or "error"; ``resource``
    and ``scope`` are shared by the spans of one request; ``raw`` is the encoded span."""

    __slots__ = (
        "end",
        "name",
        "parent_span_id",
        "raw",
        "resource",
        "scope",
        "service",
        "span_id",
        "start",
        "status",
        "trace_id",
        "trimmed",
    )

    def __init__(
        self,
        span: trace_pb2.Span,
        resource: Attributes,
        service: str,
        scope: dict[str, str],
    ) -> None:
        self.trace_id = span.trace_id.hex()
        self.span_id = span.span_id.hex()
        self.parent_span_id = span.parent_span_id.hex()
        self.name = _text(span.name)
        self.start = span.start_time_unix_nano
        self.end = max(span.end_time_unix_nano, span.start_time_unix_nano)
        self.status = _STATUS.get(span.status.code, "unset")
        self.service = service
        self.resource = resource
        self.scope = scope
        self.raw, self.trimmed = _encoded(span)

    @property
    def size(self) -> int:
        """About what holding this record costs, in bytes (the store's memory budget)."""
        return len(self.raw) + _RECORD_OVERHEAD


def _text(value: str) -> str:
    return value if len(value) <= MAX_STRING else value[: MAX_STRING - 1] + "…"


def _value(value: common_pb2.AnyValue, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _text(value.string_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":  # JSON has no NaN or infinities: those are shown as text
        number = value.double_value
        return number if math.isfinite(number) else str(number)
    if kind == "bytes_value":
        return _text(base64.b64encode(value.bytes_value).decode())
    if depth >= _MAX_DEPTH:
        return "…"
    if kind == "array_value":
        return [_value(item, depth + 1) for item in value.array_value.values[:MAX_ITEMS]]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values, depth + 1)
    return None


def _attributes(pairs: Iterable[common_pb2.KeyValue], depth: int = 0) -> Attributes:
    """``[(key, value), ...]`` in the sender's order (a JSON object would lose duplicates)."""
    out: Attributes = []
    for pair in pairs:
        if len(out) == MAX_ITEMS:
            break
        out.append((sys.intern(_text(pair.key)), _value(pair.value, depth)))
    return out


def _service(resource: Attributes) -> str:
    for key, value in resource:
        if key == "service.name" and isinstance(value, str) and value:
            return value
    return "unknown_service"


def _shorten(pairs: MutableSequence[common_pb2.KeyValue]) -> None:
    """Keep ``MAX_ITEMS`` pairs, each value at most about ``MAX_STRING`` bytes."""
    del pairs[MAX_ITEMS:]
    for pair in pairs:
        pair.key = _text(pair.key)
        if pair.value.ByteSize() > MAX_STRING:
            size = pair.value.ByteSize()
            if pair.value.WhichOneof("value") == "string_value":
                pair.value.string_value = _text(pair.value.string_value)
            else:
                pair.value.string_value = f"… ({size} bytes, too large to keep)"


def _encoded(span: trace_pb2.Span) -> tuple[bytes, bool]:
    """The span's bytes, cut down to ``MAX_SPAN_BYTES`` when larger; and whether it was."""
    if span.ByteSize() <= MAX_SPAN_BYTES:
        return span.SerializeToString(), False
    cut = trace_pb2.Span()
    cut.CopyFrom(span)
    cut.name = _text(cut.name)
    cut.status.message = _text(cut.status.message)
    _shorten(cut.attributes)
    del cut.events[MAX_ITEMS:]
    for event in cut.events:
        event.name = _text(event.name)
        _shorten(event.attributes)
    del cut.links[MAX_ITEMS:]
    for link in cut.links:
        _shorten(link.attributes)
    for part in (cut.events, cut.links, cut.attributes):
        if cut.ByteSize() <= MAX_SPAN_BYTES:
            break
        del part[:]
    return cut.SerializeToString(), True


def span_details(record: SpanRecord) -> dict[str, Any]:
    """What the span's details show: ``kind``, ``status_message``, ``attributes``,
    ``events`` (``name``, ``time`` in Unix ns, ``attributes``) and ``links``."""
    span = trace_pb2.Span.FromString(record.raw)
    return {
        "kind": _KINDS.get(span.kind, "unspecified"),
        "status_message": _text(span.status.message),
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
    }


def decode_request(
    request: trace_service_pb2.ExportTraceServiceRequest,
) -> tuple[list[SpanRecord], int]:
    """Every span of ``request`` with its resource and scope, and how many spans were left out
    because they lack a valid trace or span id (they cannot be placed in a trace)."""
    records: list[SpanRecord] = []
    invalid = 0
    for resource_spans in request.resource_spans:
        resource, service = _resource(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            scope = {
                "name": _text(scope_spans.scope.name),
                "version": _text(scope_spans.scope.version),
            }
            for span in scope_spans.spans:
                if not _valid_id(span.trace_id, 16) or not _valid_id(span.span_id, 8):
                    invalid += 1
                    continue
                records.append(SpanRecord(span, resource, service, scope))
    return records, invalid


#: Decoded resources by their encoding: the spans of every request from one process share one.
_RESOURCES: dict[bytes, tuple[Attributes, str]] = {}
_MAX_RESOURCES = 256


def _resource(resource: Any) -> tuple[Attributes, str]:
    key = resource.SerializeToString(deterministic=True)
    known = _RESOURCES.get(key)
    if known is None:
        if len(_RESOURCES) >= _MAX_RESOURCES:
            _RESOURCES.clear()  # many senders: sharing starts again, memory stays bounded
        attributes = _attributes(resource.attributes)
        known = _RESOURCES[key] = (attributes, _service(attributes))
    return known


def _valid_id(value: bytes, size: int) -> bool:
    return len(value) == size and any(value)
