"""Finished spans to an OTLP ``ExportTraceServiceRequest``, written straight in the wire format.

One encoder serves both transports: gRPC and ``http/protobuf`` send ``encode_request``'s bytes,
``http/json`` sends ``encode_request_json``'s. The message definitions of ``opentelemetry-proto``
(``collector/trace/v1``, ``trace/v1``, ``common/v1``, ``resource/v1``) define correctness: what we
write decodes with ``ExportTraceServiceRequest.FromString`` to exactly the spans we were given,
and the tests check every field of every span shape.

Why by hand: building the generated (upb) message objects costs about as much as creating the
span did, most of it in Python-to-C calls per attribute. Here a span is one ``bytearray`` and
a few ``struct`` calls; the encoded ``key`` part of each attribute (``KeyValue.key`` plus the
tag of ``KeyValue.value``) is cached per key, and the resource and scope blocks are written once
per batch. Spans are grouped by resource (by identity, then equal resources merged) and by
instrumentation scope within a resource.

The wire format used here (https://protobuf.dev/programming-guides/encoding/): a field is a
varint key ``(number << 3) | wire_type`` then its value; wire types 0 (varint: int64 as its
64-bit two's complement, so a negative number takes 10 bytes; bool; enum; uint32), 1 (fixed64:
times, doubles, little-endian) 2 (length-delimited: strings, bytes, sub-messages) and 5
(fixed32: flags). Proto3 scalars that hold their default are left out, as protobuf does, except
inside ``AnyValue``'s oneof, where presence is the value's type and an empty string, ``False``
or ``0`` is written. None of these messages has a packed repeated field.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk.trace.api import StatusCode, TraceState
from telemetry_run.sdk.trace.span import _INVALID, clean_attribute_value

if TYPE_CHECKING:
    from telemetry_run.sdk.resources import Resource
    from telemetry_run.sdk.trace.api import Link, SpanContext
    from telemetry_run.sdk.trace.span import Event, InstrumentationScope, ReadableSpan

__all__ = ["encode_request", "encode_request_json"]

_U64: Final = (1 << 64) - 1
_U128: Final = (1 << 128) - 1
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1

# -- field keys: (field number << 3) | wire type, one byte each below field 16 ---------------
# ExportTraceServiceRequest.resource_spans = 1; ResourceSpans: resource = 1, scope_spans = 2,
# schema_url = 3; ScopeSpans: scope = 1, spans = 2, schema_url = 3.
_LEN_1: Final = 0x0A  # field 1, length-delimited
_LEN_2: Final = 0x12
# Span: attributes = 9, dropped_attributes_count = 10, events = 11, dropped_events_count = 12,
# links = 13, dropped_links_count = 14; Event.attributes = 3, Link.attributes = 4,
# Resource.attributes = 1, InstrumentationScope.attributes = 3.
_SPAN_ATTRIBUTES: Final = 0x4A
_SPAN_EVENTS: Final = 0x5A
_SPAN_LINKS: Final = 0x6A
_EVENT_ATTRIBUTES: Final = 0x1A
_LINK_ATTRIBUTES: Final = 0x22
_RESOURCE_ATTRIBUTES: Final = 0x0A
_SCOPE_ATTRIBUTES: Final = 0x1A

_SMALL: Final = tuple(bytes((i,)) for i in range(128))  # a one-byte varint, by value


def _varint(value: int) -> bytes:
    """An unsigned varint (``value`` >= 0): 7 bits a byte, least significant group first."""
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(key: int, body: bytes | bytearray) -> bytes:
    return _SMALL[key] + _varint(len(body)) + body


# -- strings ---------------------------------------------------------------------------------

_SURROGATES: Final = re.compile("[\ud800-\udfff]")


def _utf8(text: str) -> bytes:
    """UTF-8 bytes; a lone surrogate (from ``surrogateescape`` decoding, say) becomes U+FFFD.

    Protobuf strings must be valid UTF-8: the receiver would reject the whole request.
    """
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text).encode()


def _string_field(key: int, text: str) -> bytes:
    """A proto3 string field, left out (empty bytes) when the string is empty."""
    if not text:
        return b""
    raw = _utf8(text)
    return _SMALL[key] + _varint(len(raw)) + raw


# -- attributes: KeyValue {key = 1; value = 2 (AnyValue)} -------------------------------------

# KeyValue's key field followed by the key of its value field, per attribute key: the part of an
# attribute that does not depend on its value. Bounded: a process with unbounded distinct keys
# (keys built from data) clears it rather than grow.
_KEY_PREFIXES: dict[str, bytes] = {}
_MAX_KEY_PREFIXES: Final = 4096


def _key_prefix(key: object) -> bytes:
    raw = _utf8(key if type(key) is str else str(key))
    prefix = b"\x0a" + _varint(len(raw)) + raw + b"\x12" if raw else b"\x12"  # "" is left out
    if type(key) is str:
        if len(_KEY_PREFIXES) >= _MAX_KEY_PREFIXES:
            _KEY_PREFIXES.clear()
        _KEY_PREFIXES[key] = prefix
    return prefix


# AnyValue, preceded by its length (it follows the prefix above): string_value = 1,
# bool_value = 2, int_value = 3, double_value = 4, array_value = 5.
_SHORT_STRING: Final = tuple(bytes((n + 2, 0x0A, n)) for n in range(126))  # then the bytes
_SMALL_INT: Final = tuple(bytes((2, 0x18, n)) for n in range(128))
_TRUE: Final = b"\x02\x10\x01"
_FALSE: Final = b"\x02\x10\x00"
_double_value: Final = struct.Struct("<BBd").pack  # (9, 0x21, value)
_EMPTY_VALUE: Final = b"\x00"  # an AnyValue with no value: a None inside an array


def _value(value: object, cleaned: bool) -> bytes | None:
    """The length-prefixed AnyValue for ``value``, or None when it has no OTLP form.

    ``_write_attributes`` inlines the scalars; this handles the rest: arrays (elements are
    scalars or None), and values not known to be clean (``cleaned`` false: the attributes of
    resources and scopes, which nothing checked), which are cleaned as a span attribute would
    be: subclasses become their base type, lists tuples, and what stays invalid (a mixed or
    nested list, an int beyond 64 bits, any other type) is left out.
    """
    if not cleaned:
        clean = clean_attribute_value(value)
        return None if clean is _INVALID else _value(clean, cleaned=True)
    if type(value) is str:
        raw = _utf8(value)
        body = b"\x0a" + _varint(len(raw)) + raw
    elif type(value) is bool:
        return _TRUE if value else _FALSE
    elif type(value) is int:
        body = b"\x18" + _varint(value & _U64)
    elif type(value) is float:
        return _double_value(9, 0x21, value)
    elif type(value) is tuple:
        array = b"".join(
            [b"\x0a" + (_EMPTY_VALUE if v is None else _value(v, True) or b"\x00") for v in value]
        )
        body = b"\x2a" + _varint(len(array)) + array
    else:
        return None
    return _varint(len(body)) + body


# The whole length-prefixed ``KeyValue`` (what follows the field key) of an attribute whose value
# repeats from span to span (a method, a scheme, a host, a status code, a flag), per key then per
# value: one look-up instead of encoding it again. Only exact str, int and bool values go in, each
# type in its own table (``True == 1`` and ``1 == 1.0`` must not meet). A key whose values do not
# repeat (a path, an id) stops at ``_MAX_VALUES_PER_KEY`` of them rather than churn the cache;
# past ``_MAX_CACHED_VALUES`` entries in all, it starts over.
_KEY_VALUES: dict[str, tuple[dict[str, bytes], dict[int, bytes]]] = {}
_MAX_VALUES_PER_KEY: Final = 32
_MAX_CACHED_VALUES: Final = 8192
_cached_values = [0]  # entries in _KEY_VALUES, across keys
_MAX_CACHED_STRING: Final = 64  # longer strings are seldom repeated


def _value_tables(name: str) -> tuple[dict[str, bytes], dict[int, bytes]]:
    if len(_KEY_VALUES) >= _MAX_KEY_PREFIXES:
        _KEY_VALUES.clear()
    tables: tuple[dict[str, bytes], dict[int, bytes]] = ({}, {})
    _KEY_VALUES[name] = tables
    return tables


def _remember(table: dict[Any, bytes], value: object, key_value: bytes) -> None:
    count = _cached_values[0]
    if count >= _MAX_CACHED_VALUES:
        for strings, ints in _KEY_VALUES.values():
            strings.clear()
            ints.clear()
        count = 0
    table[value] = key_value
    _cached_values[0] = count + 1


def _write_attributes(
    out: bytearray, key: int, attributes: Mapping[str, Any], cleaned: bool = True
) -> None:
    """Append each attribute as a ``KeyValue`` field with the given key (see ``_write_pairs``)."""
    _write_pairs(out, key, attributes.items(), cleaned)


def _write_pairs(  # noqa: PLR0915  # one frame: hot
    out: bytearray, key: int, attributes: Iterable[tuple[Any, Any]], cleaned: bool = True
) -> None:
    """Append each (name, value) as a ``KeyValue`` field with the given key.

    ``cleaned``: the values were checked when set (span, event and link attributes).

    Inlined for scalar values (so every length but a long string's fits one byte); arrays and
    anything uncleaned go through ``_value``. Repeated str, int and bool values of a cleaned
    attribute come whole from ``_KEY_VALUES``.
    """
    prefixes = _KEY_PREFIXES
    key_values = _KEY_VALUES
    for name, value in attributes:
        kind = type(value)
        table: dict[Any, bytes] | None = None
        if cleaned and type(name) is str:
            tables = key_values.get(name) or _value_tables(name)
            if kind is str:
                table = tables[0]
            elif kind is int or kind is bool:
                table = tables[1]
                value_key: object = value if kind is int else (value, True)
            if table is not None:
                found_key_value = table.get(value if kind is str else value_key)
                if found_key_value is not None:
                    out.append(key)
                    out += found_key_value
                    continue
        prefix = prefixes.get(name) or _key_prefix(name)
        if kind is str:
            try:
                raw = value.encode()
            except UnicodeEncodeError:
                raw = _utf8(value)
            size = len(raw)
            if size < 126:
                encoded = _SHORT_STRING[size] + raw
            else:
                encoded = _varint(size + 1 + len(_varint(size))) + b"\x0a" + _varint(size) + raw
            if size > _MAX_CACHED_STRING:
                table = None
        elif kind is int:
            if 0 <= value < 0x80:
                encoded = _SMALL_INT[value]
            elif 0 <= value < 0x4000:  # HTTP status codes, ports: a two-byte varint
                encoded = bytes((3, 0x18, (value & 0x7F) | 0x80, value >> 7))
            elif cleaned or _INT64_MIN <= value <= _INT64_MAX:
                body = b"\x18" + _varint(value & _U64)
                encoded = _SMALL[len(body)] + body
            else:  # beyond int64: only an uncleaned resource or scope attribute can be
                continue
        elif kind is float:
            encoded = _double_value(9, 0x21, value)
        elif kind is bool:
            encoded = _TRUE if value else _FALSE
        else:
            found = _value(value, cleaned)
            if found is None:
                continue
            encoded = found
        size = len(prefix) + len(encoded)
        key_value = (_SMALL[size] if size < 0x80 else _varint(size)) + prefix + encoded
        out.append(key)
        out += key_value
        if table is not None and len(table) < _MAX_VALUES_PER_KEY:
            _remember(table, value if kind is str else value_key, key_value)


# -- spans -----------------------------------------------------------------------------------

# Span: trace_id = 1, span_id = 2 (bytes, big-endian ids), trace_state = 3, parent_span_id = 4,
# name = 5, kind = 6 (enum), start_time_unix_nano = 7, end_time_unix_nano = 8 (fixed64),
# status = 15, flags = 16 (fixed32).
_ids: Final = struct.Struct(">BBQQBBQ").pack  # (0x0A, 16, trace hi, trace lo, 0x12, 8, span)
_parent_id: Final = struct.Struct(">BBQ").pack  # (0x22, 8, parent span id)
_kind_and_times: Final = struct.Struct("<BBBQBQ").pack  # (0x30, kind, 0x39, start, 0x41, end)
_flags_field: Final = struct.Struct("<BBI").pack  # (0x85, 0x01, flags): field 16, fixed32
_fixed64: Final = struct.Struct("<BQ").pack  # (key, value): a fixed64 field, one-byte key
_link_flags: Final = struct.Struct("<BI").pack  # (0x35, flags): Link.flags = 6, fixed32

# OTLP's SpanKind is ours plus one (0 is SPAN_KIND_UNSPECIFIED): ``kind._value_ + 1``, as
# reading ``.value`` (a descriptor) costs several times the plain attribute.

# SpanFlags: bits 0-7 the W3C trace flags; bit 8 (HAS_IS_REMOTE) says whether the parent (or the
# linked span) is remote is known, bit 9 (IS_REMOTE) that it is remote.
_LOCAL_PARENT: Final = 0x100
_REMOTE_PARENT: Final = 0x300
_NO_STATE: Final = TraceState.get_default()  # shared by every span without a trace state

_STATUS_OK: Final = b"\x7a\x02\x18\x01"  # Status {code = 3: STATUS_CODE_OK}
_STATUS_ERROR: Final = b"\x7a\x02\x18\x02"
_UNSET: Final = StatusCode.UNSET
_ERROR: Final = StatusCode.ERROR


def _sparse_kind_and_times(kind: int, start: int, end: int) -> bytes:
    return (
        bytes((0x30, kind))
        + (_fixed64(0x39, start) if start else b"")
        + (_fixed64(0x41, end) if end else b"")
    )


def _state_field(state: TraceState, states: dict[int, bytes]) -> bytes:
    """``trace_state = 3`` for a span's state, once per state object in a request."""
    found = states.get(id(state))  # the spans of the request keep every state alive
    if found is None:
        found = states[id(state)] = _string_field(0x1A, state.to_header()) if state else b""
    return found


def _write_span(  # noqa: PLR0915  # one frame: hot
    out: bytearray, span: ReadableSpan, states: dict[int, bytes]
) -> None:
    """Append one ``ScopeSpans.spans`` field (key, length, Span).

    Reads the span's slots rather than its ``ReadableSpan`` properties: a dozen calls less a span.
    """
    trace_id = span._trace_id
    buf = bytearray(
        _ids(0x0A, 16, (trace_id >> 64) & _U64, trace_id & _U64, 0x12, 8, span._span_id & _U64)
    )
    parent = span._parent
    extra = span._extra
    if extra is not None and extra.trace_state is not None:  # the sampler's own
        state = extra.trace_state
    else:
        state = parent.trace_state if parent is not None else _NO_STATE
    if state is not _NO_STATE:
        buf += states.get(id(state)) or _state_field(state, states)
    if parent is not None:
        buf += _parent_id(0x22, 8, parent.span_id & _U64)
        flags = (span._flags & 0xFF) | (_REMOTE_PARENT if parent.is_remote else _LOCAL_PARENT)
    else:
        flags = (span._flags & 0xFF) | _LOCAL_PARENT
    name = span._name
    if name:
        try:
            raw = name.encode()
        except UnicodeEncodeError:
            raw = _utf8(name)
        size = len(raw)
        buf.append(0x2A)
        if size < 0x80:
            buf.append(size)
        else:
            buf += _varint(size)
        buf += raw
    start = span._start_time & _U64
    end = (span._end_time or 0) & _U64
    if start and end:
        buf += _kind_and_times(0x30, span._kind._value_ + 1, 0x39, start, 0x41, end)
    else:  # a zero time is left out, as protobuf does
        buf += _sparse_kind_and_times(span._kind._value_ + 1, start, end)
    attributes = span._attributes  # after end(), (*values, keys): see trace/span.py
    if type(attributes) is dict:
        if attributes:
            _write_pairs(buf, _SPAN_ATTRIBUTES, attributes.items())
    elif len(attributes) > 1:
        _write_pairs(buf, _SPAN_ATTRIBUTES, zip(attributes[-1], attributes, strict=False))
    if extra is not None:
        dropped = extra.dropped_attributes
        if dropped:
            buf.append(0x50)
            buf += _varint(dropped)
        for event in extra.events:
            _write_event(buf, event)
        dropped = extra.dropped_events
        if dropped:
            buf.append(0x60)
            buf += _varint(dropped)
        for link in extra.links:
            _write_link(buf, link)
        dropped = extra.dropped_links
        if dropped:
            buf.append(0x70)
            buf += _varint(dropped)
    status = span._status
    code = status.status_code
    if code is not _UNSET:
        if code is not _ERROR:
            buf += _STATUS_OK
        elif status.description:
            body = _string_field(0x12, status.description) + b"\x18\x02"
            buf += _length_delimited(0x7A, body)
        else:
            buf += _STATUS_ERROR
    buf += _flags_field(0x85, 0x01, flags)
    size = len(buf)
    out.append(_LEN_2)
    if size < 0x80:
        out.append(size)
    else:
        out += _varint(size)
    out += buf


def _write_event(out: bytearray, event: Event) -> None:
    """Span.events: Event {time_unix_nano = 1; name = 2; attributes = 3; dropped = 4}."""
    timestamp = event.timestamp & _U64
    buf = bytearray(_fixed64(0x09, timestamp) if timestamp else b"")
    name = event.name
    if name:
        buf += _string_field(0x12, name)
    attributes = event.attributes
    if attributes:
        _write_attributes(buf, _EVENT_ATTRIBUTES, attributes)
    dropped = event.dropped_attributes
    if dropped:
        buf.append(0x20)
        buf += _varint(dropped)
    size = len(buf)
    out.append(_SPAN_EVENTS)
    if size < 0x80:
        out.append(size)
    else:
        out += _varint(size)
    out += buf


def _write_link(out: bytearray, link: Link) -> None:
    """Span.links: Link {trace_id = 1; span_id = 2; trace_state = 3; attributes = 4;
    dropped_attributes_count = 5; flags = 6 (fixed32)}."""
    ctx: SpanContext = link.context
    trace_id = ctx.trace_id
    buf = bytearray(
        _ids(0x0A, 16, (trace_id >> 64) & _U64, trace_id & _U64, 0x12, 8, ctx.span_id & _U64)
    )
    state = ctx.trace_state
    if state is not _NO_STATE and state:
        buf += _string_field(0x1A, state.to_header())
    if link.attributes:
        _write_attributes(buf, _LINK_ATTRIBUTES, link.attributes)
    if link.dropped_attributes:
        buf.append(0x28)
        buf += _varint(link.dropped_attributes)
    remote = _REMOTE_PARENT if ctx.is_remote else _LOCAL_PARENT
    buf += _link_flags(0x35, (ctx.trace_flags & 0xFF) | remote)
    out.append(_SPAN_LINKS)
    out += _varint(len(buf))
    out += buf


# -- resource and scope blocks ---------------------------------------------------------------


def _resource_block(resource: Resource) -> bytes:
    """ResourceSpans.resource = 1: Resource {attributes = 1}."""
    body = bytearray()
    _write_attributes(body, _RESOURCE_ATTRIBUTES, resource.attributes, cleaned=False)
    return _length_delimited(_LEN_1, body)


def _scope_block(scope: InstrumentationScope) -> bytes:
    """ScopeSpans.scope = 1: InstrumentationScope {name = 1; version = 2; attributes = 3}."""
    body = bytearray(_string_field(0x0A, scope.name))
    body += _string_field(0x12, scope.version or "")
    if scope.attributes:
        _write_attributes(body, _SCOPE_ATTRIBUTES, scope.attributes, cleaned=False)
    return _length_delimited(_LEN_1, body)


def _same_scope(a: InstrumentationScope, b: InstrumentationScope) -> bool:
    return (
        a.name == b.name
        and (a.version or "") == (b.version or "")
        and (a.schema_url or "") == (b.schema_url or "")
        and dict(a.attributes) == dict(b.attributes)
    )


_Batch = list[tuple["Resource", list[tuple["InstrumentationScope", list["ReadableSpan"]]]]]


def _group(spans: Sequence[ReadableSpan]) -> _Batch:
    """Spans by resource, then by scope, in order of first appearance.

    By identity first (consecutive spans of one tracer, the usual batch, skip even that look-up),
    then equal resources (two providers with the same attributes) and equal scopes are merged.
    """
    by_id: dict[tuple[int, int], list[ReadableSpan]] = {}
    keys: list[tuple[Resource, InstrumentationScope]] = []
    last_resource: object = None
    last_scope: object = None
    current: list[ReadableSpan] = []
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope
        if resource is not last_resource or scope is not last_scope:
            found = by_id.get((id(resource), id(scope)))
            if found is None:
                found = by_id[id(resource), id(scope)] = []
                keys.append((resource, scope))
            current = found
            last_resource, last_scope = resource, scope
        current.append(span)

    if len(keys) == 1:
        resource, scope = keys[0]
        return [(resource, [(scope, current)])]
    batch: _Batch = []
    merged = False
    for resource, scope in keys:
        members = by_id[id(resource), id(scope)]
        scopes = next((known for res, known in batch if res == resource), None)
        if scopes is None:
            scopes = []
            batch.append((resource, scopes))
        same = next((found for known, found in scopes if _same_scope(known, scope)), None)
        if same is None:
            scopes.append((scope, members))
        else:
            by_id[id(resource), id(scope)] = same
            merged = True
    if merged:  # rare (two providers with equal resources): refill, keeping the batch order
        for _, scopes in batch:
            for _, members in scopes:
                members.clear()
        for span in spans:
            by_id[id(span.resource), id(span.instrumentation_scope)].append(span)
    return batch


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` for ``spans`` (ended spans)."""
    request = bytearray()
    states: dict[int, bytes] = {}  # trace_state fields by state object
    for resource, scopes in _group(spans):
        body = bytearray(_resource_block(resource))
        for scope, members in scopes:
            scope_spans = bytearray(_scope_block(scope))
            for span in members:
                _write_span(scope_spans, span, states)
            scope_spans += _string_field(0x1A, scope.schema_url or "")
            body += _length_delimited(_LEN_2, scope_spans)
        body += _string_field(0x1A, resource.schema_url)
        request += _length_delimited(_LEN_1, body)
    return bytes(request)


# -- OTLP/JSON -------------------------------------------------------------------------------
#
# The protobuf JSON mapping (https://protobuf.dev/programming-guides/json/): lowerCamelCase
# names, 64-bit integers (int64, fixed64) as decimal strings, 32-bit ones as numbers, NaN and
# the infinities as strings, fields at their default left out. OTLP deviates twice: enums are
# integers, and trace and span ids are hex rather than base64. Values are the ones the binary
# form carries (same cleaning, same dropped attributes).

_NON_FINITE: Final = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _json_value(value: object, cleaned: bool) -> dict[str, Any] | None:
    if not cleaned:
        clean = clean_attribute_value(value)
        return None if clean is _INVALID else _json_value(clean, cleaned=True)
    if type(value) is str:
        return {"stringValue": value}
    if type(value) is bool:
        return {"boolValue": value}
    if type(value) is int:
        return {"intValue": str(value)}
    if type(value) is float:
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": "NaN" if math.isnan(value) else _NON_FINITE[value]}
    if type(value) is tuple:
        values = [{} if v is None else _json_value(v, True) or {} for v in value]
        return {"arrayValue": {"values": values} if values else {}}
    return None


def _json_attributes(
    target: dict[str, Any], attributes: Mapping[str, object], cleaned: bool = True
) -> None:
    if attributes:
        encoded = []
        for key, value in attributes.items():
            found = _json_value(value, cleaned)
            if found is not None:
                encoded.append({"key": key if type(key) is str else str(key), "value": found})
        target["attributes"] = encoded


def _json_flags(trace_flags: int, remote: bool) -> int:
    return (trace_flags & 0xFF) | (_REMOTE_PARENT if remote else _LOCAL_PARENT)


def _json_span(span: ReadableSpan) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": f"{span.trace_id & _U128:032x}",
        "spanId": f"{span.span_id & _U64:016x}",
    }
    state = span.trace_state
    if state:
        out["traceState"] = state.to_header()
    parent = span.parent
    if parent is not None:
        out["parentSpanId"] = f"{parent.span_id & _U64:016x}"
    out["flags"] = _json_flags(span.trace_flags, parent is not None and parent.is_remote)
    if span.name:
        out["name"] = span.name
    out["kind"] = span.kind._value_ + 1
    out["startTimeUnixNano"] = str(span.start_time & _U64)
    out["endTimeUnixNano"] = str((span.end_time or 0) & _U64)
    _json_attributes(out, span.attributes)
    if span.dropped_attributes:
        out["droppedAttributesCount"] = span.dropped_attributes
    if span.events:
        events = out["events"] = []
        for event in span.events:
            item: dict[str, Any] = {"timeUnixNano": str(event.timestamp & _U64)}
            if event.name:
                item["name"] = event.name
            _json_attributes(item, event.attributes)
            if event.dropped_attributes:
                item["droppedAttributesCount"] = event.dropped_attributes
            events.append(item)
    if span.dropped_events:
        out["droppedEventsCount"] = span.dropped_events
    if span.links:
        links = out["links"] = []
        for link in span.links:
            ctx = link.context
            item = {
                "traceId": f"{ctx.trace_id & _U128:032x}",
                "spanId": f"{ctx.span_id & _U64:016x}",
            }
            if ctx.trace_state:
                item["traceState"] = ctx.trace_state.to_header()
            _json_attributes(item, link.attributes)
            if link.dropped_attributes:
                item["droppedAttributesCount"] = link.dropped_attributes
            item["flags"] = _json_flags(ctx.trace_flags, ctx.is_remote)
            links.append(item)
    if span.dropped_links:
        out["droppedLinksCount"] = span.dropped_links
    status = span.status
    if status.status_code is not _UNSET:
        out["status"] = {"code": status.status_code._value_}
        if status.status_code is _ERROR and status.description:
            out["status"]["message"] = status.description
    return out


def encode_request_json(spans: Sequence[ReadableSpan]) -> bytes:
    """The OTLP/JSON form (``http/json``) of the request ``encode_request`` writes."""
    resource_spans = []
    for resource, scopes in _group(spans):
        scope_spans = []
        for scope, members in scopes:
            scope_json: dict[str, Any] = {}
            if scope.name:
                scope_json["name"] = scope.name
            if scope.version:
                scope_json["version"] = scope.version
            _json_attributes(scope_json, scope.attributes, cleaned=False)
            entry: dict[str, Any] = {"scope": scope_json, "spans": list(map(_json_span, members))}
            if scope.schema_url:
                entry["schemaUrl"] = scope.schema_url
            scope_spans.append(entry)
        resource_json: dict[str, Any] = {}
        _json_attributes(resource_json, resource.attributes, cleaned=False)
        block: dict[str, Any] = {"resource": resource_json, "scopeSpans": scope_spans}
        if resource.schema_url:
            block["schemaUrl"] = resource.schema_url
        resource_spans.append(block)
    text = json.dumps({"resourceSpans": resource_spans}, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate in some string: as the binary form does
        return _SURROGATES.sub("\ufffd", text).encode()
