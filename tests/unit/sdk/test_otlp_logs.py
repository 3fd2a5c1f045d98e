"""OTLP log export: the request we write decodes with opentelemetry-proto's logs messages to
the records given, and both transports deliver it to the real receiver (gRPC LogsService,
HTTP /v1/logs as protobuf or JSON, gzip), with headers, through the span exporters' code."""

from __future__ import annotations

import json
import logging
import time

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from telemetry_run.sdk import Diagnostics, Resource
from telemetry_run.sdk.exporters.otlp._encode_logs import (
    encode_logs_request,
    encode_logs_request_json,
)
from telemetry_run.sdk.exporters.otlp.grpc_logs import OTLPGrpcLogExporter
from telemetry_run.sdk.exporters.otlp.http_logs import OTLPHttpLogExporter
from telemetry_run.sdk.logs import LogData
from telemetry_run.testing.otlp import OTLPReceiver, _hex_ids_to_base64

RESOURCE = Resource({"service.name": "orders", "deployment.environment": "test"})
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
SPAN_ID = 0xEEE19B7EC3C1B174


def _record(body: str = "paid", scope: str = "app.orders", **kwargs: object) -> LogData:
    fields: dict[str, object] = {
        "dropped_attributes": 3,
        "time": 1_700_000_000_123_456_000,
        "observed_time": 1_700_000_000_124_000_000,
        "severity_number": 13,
        "severity_text": "WARNING",
        "body": body,
        "scope": scope,
        "resource": RESOURCE,
        "attributes": {"code.line.number": 12, "exception.type": "KeyError", "ratio": 0.5},
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "trace_flags": 1,
    }
    fields.update(kwargs)
    return LogData(**fields)  # type: ignore[arg-type]


def _attributes(record: object) -> dict[str, object]:
    return {
        kv.key: getattr(kv.value, kv.value.WhichOneof("value"))
        for kv in record.attributes  # type: ignore[attr-defined]
    }


def _check(request: logs_service_pb2.ExportLogsServiceRequest) -> None:
    (resource_logs,) = request.resource_logs
    resource = {kv.key: kv.value.string_value for kv in resource_logs.resource.attributes}
    assert resource == {"service.name": "orders", "deployment.environment": "test"}
    scopes = [
        (s.scope.name, [r.body.string_value for r in s.log_records])
        for s in resource_logs.scope_logs
    ]
    assert scopes == [("app.orders", ["paid", "bare"]), ("app.db", ["slow query é"])]
    paid = resource_logs.scope_logs[0].log_records[0]
    assert paid.time_unix_nano == 1_700_000_000_123_456_000
    assert paid.observed_time_unix_nano == 1_700_000_000_124_000_000
    assert (paid.severity_number, paid.severity_text) == (13, "WARNING")
    assert paid.trace_id == TRACE_ID.to_bytes(16, "big")
    assert paid.span_id == SPAN_ID.to_bytes(8, "big")
    assert paid.flags == 1
    assert _attributes(paid) == {"code.line.number": 12, "exception.type": "KeyError", "ratio": 0.5}
    assert paid.dropped_attributes_count == 3
    bare = resource_logs.scope_logs[0].log_records[1]
    assert (bare.trace_id, bare.span_id, bare.flags, bare.severity_number) == (b"", b"", 0, 0)
    assert bare.dropped_attributes_count == 0
    assert list(bare.attributes) == []


def _records() -> list[LogData]:
    return [
        _record(),
        _record("slow query é", scope="app.db"),
        _record(
            "bare",
            attributes={},
            trace_id=0,
            span_id=0,
            trace_flags=0,
            severity_number=0,
            severity_text="",
            dropped_attributes=0,
        ),
    ]


def test_the_protobuf_request_decodes_to_the_records() -> None:
    _check(logs_service_pb2.ExportLogsServiceRequest.FromString(encode_logs_request(_records())))


def test_the_json_request_decodes_to_the_records() -> None:
    document = json.loads(encode_logs_request_json(_records()))
    assert document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["traceId"] == (
        f"{TRACE_ID:032x}"
    )
    _hex_ids_to_base64(document)
    request = logs_service_pb2.ExportLogsServiceRequest()
    json_format.ParseDict(document, request)
    _check(request)


def test_grpc_delivers_to_the_logs_service_with_headers_and_gzip(
    otlp_receiver: OTLPReceiver,
) -> None:
    exporter = OTLPGrpcLogExporter(
        otlp_receiver.grpc_endpoint,
        headers={"x-tenant": "acme"},
        compression="gzip",
        diagnostics=Diagnostics(noun="log record"),
    )
    try:
        assert exporter.export(_records(), deadline=time.monotonic() + 10).success
    finally:
        exporter.shutdown(deadline=time.monotonic() + 5)
    (received,) = otlp_receiver.log_requests
    assert received.path == "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
    assert received.headers["x-tenant"] == "acme"
    assert received.content_encoding == "gzip"
    _check(received.request)
    assert otlp_receiver.requests == []  # nothing went to the trace service


@pytest.mark.parametrize(
    ("protocol", "content_type"),
    [("http/protobuf", "application/x-protobuf"), ("http/json", "application/json")],
)
def test_http_delivers_to_v1_logs(
    otlp_receiver: OTLPReceiver, protocol: str, content_type: str
) -> None:
    exporter = OTLPHttpLogExporter(
        otlp_receiver.http_logs_endpoint,
        protocol=protocol,
        headers={"x-tenant": "acme"},
        diagnostics=Diagnostics(noun="log record"),
    )
    try:
        assert exporter.export(_records(), deadline=time.monotonic() + 10).success
    finally:
        exporter.shutdown(deadline=time.monotonic() + 5)
    (received,) = otlp_receiver.log_requests
    assert (received.path, received.content_type) == ("/v1/logs", content_type)
    assert received.headers["x-tenant"] == "acme"
    _check(received.request)


def test_an_unreachable_receiver_fails_the_batch_as_retryable() -> None:
    from telemetry_run.testing.otlp import free_port

    exporter = OTLPHttpLogExporter(
        f"http://127.0.0.1:{free_port()}/v1/logs",
        timeout=0.5,
        diagnostics=Diagnostics(noun="log record"),
    )
    result = exporter.export(_records(), deadline=time.monotonic() + 0.5)
    assert not result.success and result.retryable


@pytest.mark.parametrize("transport", ["grpc", "http/protobuf", "http/json"])
def test_records_the_receiver_rejects_are_counted_as_rejected(
    otlp_receiver: OTLPReceiver, transport: str
) -> None:
    from telemetry_run.sdk.logs.processor import BatchLogRecordProcessor

    otlp_receiver.partial_success(2, "too old")
    diagnostics = Diagnostics(noun="log record", log=logging.getLogger("tests.otlp_logs"))
    exporter: OTLPGrpcLogExporter | OTLPHttpLogExporter
    if transport == "grpc":
        exporter = OTLPGrpcLogExporter(otlp_receiver.grpc_endpoint, diagnostics=diagnostics)
    else:
        exporter = OTLPHttpLogExporter(
            otlp_receiver.http_logs_endpoint, protocol=transport, diagnostics=diagnostics
        )
    processor = BatchLogRecordProcessor(exporter, schedule_delay=3600, diagnostics=diagnostics)
    for record in _records():
        processor.emit(record)
    processor.shutdown(deadline=time.monotonic() + 10)
    counts = diagnostics.snapshot()
    assert (counts["produced"], counts["exported"], counts["rejected"]) == (3, 1, 2)
