"""Log records to an OTLP ``ExportLogsServiceRequest``, written in the wire format with the
span encoder's pieces (``_encode``: attributes, resource block, strings, varints).

opentelemetry-proto's ``collector/logs/v1`` and ``logs/v1`` messages define correctness: what
is written here decodes with ``ExportLogsServiceRequest.FromString`` to the records given (the
tests check each field). Records are grouped by resource, then by scope (the logger's name), in
order of first appearance.

LogRecord: time_unix_nano = 1 (fixed64), severity_number = 2 (enum), severity_text = 3, body = 5
(AnyValue), attributes = 6, dropped_attributes_count = 7, flags = 8 (fixed32: the W3C trace flags
in bits 0-7), trace_id = 9, span_id = 10 (bytes, big-endian), observed_time_unix_nano = 11
(fixed64).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk.exporters.otlp._encode import (
    _LEN_1,
    _LEN_2,
    _SURROGATES,
    _U64,
    _json_attributes,
    _length_delimited,
    _resource_block,
    _string_field,
    _utf8,
    _varint,
    _write_attributes,
)

if TYPE_CHECKING:
    from telemetry_run.sdk.logs import LogData
    from telemetry_run.sdk.resources import Resource

__all__ = ["encode_logs_request", "encode_logs_request_json"]

_LOG_ATTRIBUTES: Final = 0x32
_fixed64: Final = struct.Struct("<BQ").pack
_flags: Final = struct.Struct("<BI").pack  # (0x45, flags): field 8, fixed32
_trace_id: Final = struct.Struct(">BBQQ").pack  # (0x4A, 16, high, low)
_span_id: Final = struct.Struct(">BBQ").pack  # (0x52, 8, id)

_Groups = list[tuple["Resource", list[tuple[str, list["LogData"]]]]]


def _group(records: Sequence[LogData]) -> _Groups:
    groups: _Groups = []
    by_resource: dict[int, dict[str, list[LogData]]] = {}
    for record in records:
        scopes = by_resource.get(id(record.resource))
        if scopes is None:
            scopes = by_resource[id(record.resource)] = {}
            groups.append((record.resource, []))
        members = scopes.get(record.scope)
        if members is None:
            members = scopes[record.scope] = []
            next(g for r, g in groups if r is record.resource).append((record.scope, members))
        members.append(record)
    return groups


def _write_record(out: bytearray, record: LogData) -> None:
    body = bytearray()
    if record.time:
        body += _fixed64(0x09, record.time & _U64)
    if record.severity_number:
        body += b"\x10" + _varint(record.severity_number)
    body += _string_field(0x1A, record.severity_text)
    text = _utf8(record.body)
    value = b"\x0a" + _varint(len(text)) + text  # AnyValue.string_value
    body += b"\x2a" + _varint(len(value)) + value
    if record.attributes:
        _write_attributes(body, _LOG_ATTRIBUTES, record.attributes)
    if record.dropped_attributes:
        body += b"\x38" + _varint(record.dropped_attributes)
    if record.trace_flags:
        body += _flags(0x45, record.trace_flags & 0xFF)
    if record.trace_id:
        tid = record.trace_id
        body += _trace_id(0x4A, 16, (tid >> 64) & _U64, tid & _U64)
    if record.span_id:
        body += _span_id(0x52, 8, record.span_id & _U64)
    if record.observed_time:
        body += _fixed64(0x59, record.observed_time & _U64)
    out += _length_delimited(_LEN_2, body)


def encode_logs_request(records: Sequence[LogData]) -> bytes:
    """The serialized ``ExportLogsServiceRequest`` for ``records``."""
    request = bytearray()
    for resource, scopes in _group(records):
        block = bytearray(_resource_block(resource))
        for scope, members in scopes:
            scope_logs = bytearray(_length_delimited(_LEN_1, _string_field(0x0A, scope)))
            for record in members:
                _write_record(scope_logs, record)
            block += _length_delimited(_LEN_2, scope_logs)
        block += _string_field(0x1A, resource.schema_url)
        request += _length_delimited(_LEN_1, block)
    return bytes(request)


def _json_record(record: LogData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if record.time:
        out["timeUnixNano"] = str(record.time & _U64)
    if record.observed_time:
        out["observedTimeUnixNano"] = str(record.observed_time & _U64)
    if record.severity_number:
        out["severityNumber"] = record.severity_number
    if record.severity_text:
        out["severityText"] = record.severity_text
    out["body"] = {"stringValue": record.body}
    _json_attributes(out, record.attributes)
    if record.dropped_attributes:
        out["droppedAttributesCount"] = record.dropped_attributes
    if record.trace_flags:
        out["flags"] = record.trace_flags & 0xFF
    if record.trace_id:
        out["traceId"] = f"{record.trace_id:032x}"
    if record.span_id:
        out["spanId"] = f"{record.span_id:016x}"
    return out


def encode_logs_request_json(records: Sequence[LogData]) -> bytes:
    """The OTLP/JSON form (``http/json``) of the request ``encode_logs_request`` writes."""
    resource_logs = []
    for resource, scopes in _group(records):
        scope_logs = [
            {"scope": {"name": scope} if scope else {}, "logRecords": list(map(_json_record, m))}
            for scope, m in scopes
        ]
        resource_json: dict[str, Any] = {}
        _json_attributes(resource_json, resource.attributes, cleaned=False)
        block: dict[str, Any] = {"resource": resource_json, "scopeLogs": scope_logs}
        if resource.schema_url:
            block["schemaUrl"] = resource.schema_url
        resource_logs.append(block)
    text = json.dumps({"resourceLogs": resource_logs}, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate in some string: as the binary form does
        return _SURROGATES.sub("\ufffd", text).encode()
