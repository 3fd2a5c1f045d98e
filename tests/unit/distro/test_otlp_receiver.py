"""The testing OTLP receiver's body cap: a gzip bomb is a 400 (INVALID_ARGUMENT), not an OOM."""

from __future__ import annotations

import gzip
import http.client
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from telemetry_run.testing.otlp import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    Misbehaviour,
    OTLPReceiver,
    gunzip_capped,
)

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_CAP = 64 * 1024


def _request(span_name: str = "kept", padding: int = 0) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.name = span_name + "x" * padding
    span.trace_id = b"\x01" * 16
    span.span_id = b"\x02" * 8
    return request.SerializeToString()


#: A valid request that inflates to 64 times the cap, from a body far below it.
_BOMB = gzip.compress(_request(padding=64 * _CAP))


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver(max_body_bytes=_CAP) as started:
        yield started


def _post(receiver: OTLPReceiver, body: bytes, **headers: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", receiver.http_port, timeout=30)
    try:
        conn.request(
            "POST",
            "/v1/traces",
            body,
            {"Content-Type": "application/x-protobuf", **headers},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _grpc_call(receiver: OTLPReceiver, body: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{receiver.grpc_port}") as channel:
        call = channel.unary_unary(
            _EXPORT, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        try:
            call(body, timeout=30)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return,attr-defined]
        return grpc.StatusCode.OK


def test_the_default_cap_is_grpcs_default_receive_limit() -> None:
    assert MAX_BODY_BYTES == 4 * 1024 * 1024
    assert OTLPReceiver().max_body_bytes == MAX_BODY_BYTES


def test_gunzip_stops_at_the_cap() -> None:
    assert gunzip_capped(gzip.compress(b"a" * _CAP), _CAP) == b"a" * _CAP
    # two members, as gzip.decompress reads them
    assert gunzip_capped(gzip.compress(b"ab") + gzip.compress(b"cd"), _CAP) == b"abcd"
    with pytest.raises(BodyTooLarge):
        gunzip_capped(gzip.compress(b"a" * (_CAP + 1)), _CAP)
    with pytest.raises(BodyTooLarge):
        gunzip_capped(gzip.compress(b"a" * _CAP) * 2, _CAP + 1)  # the sum counts
    with pytest.raises(ValueError, match="truncated"):
        gunzip_capped(gzip.compress(b"a" * 1000)[:-12], _CAP)


def test_an_http_gzip_bomb_is_a_400_and_the_receiver_carries_on(receiver: OTLPReceiver) -> None:
    assert len(_BOMB) < _CAP
    assert _post(receiver, _BOMB, **{"Content-Encoding": "gzip"}) == 400
    assert receiver.requests == []
    # within the cap, compressed or not, requests are accepted as before
    assert _post(receiver, gzip.compress(_request()), **{"Content-Encoding": "gzip"}) == 200
    assert _post(receiver, _request()) == 200
    assert [span.name for span in receiver.spans()] == ["kept", "kept"]


def test_an_http_body_over_the_cap_is_a_400_without_being_read(receiver: OTLPReceiver) -> None:
    assert _post(receiver, _request(padding=_CAP)) == 400
    assert receiver.requests == []


def test_a_grpc_gzip_bomb_is_invalid_argument_and_the_receiver_carries_on(
    receiver: OTLPReceiver,
) -> None:
    assert _grpc_call(receiver, _BOMB) == grpc.StatusCode.INVALID_ARGUMENT
    assert receiver.requests == []
    assert _grpc_call(receiver, gzip.compress(_request())) == grpc.StatusCode.OK
    assert [span.name for span in receiver.spans()] == ["kept"]


def test_a_grpc_message_over_the_cap_is_refused(receiver: OTLPReceiver) -> None:
    assert _grpc_call(receiver, _request(padding=_CAP)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert receiver.requests == []


def test_a_scripted_misbehaviour_is_answered_as_written_then_the_receiver_carries_on(
    receiver: OTLPReceiver,
) -> None:
    """``misbehave_next``: the status, headers and streamed body as scripted, on both
    transports, recorded as attempts only; the next call is answered normally."""
    answer = Misbehaviour(
        status=429,
        headers=(("Content-Type", "text/plain"), ("Retry-After", "\u00b2")),
        body=b"ab",
        body_size=3 * 65536 + 1,
    )
    receiver.misbehave_next(1, answer)
    conn = http.client.HTTPConnection("127.0.0.1", receiver.http_port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", _request(), {"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 429
    assert response.getheader("Retry-After") == "\u00b2"
    assert body == (b"ab" * 65536 * 2)[: 3 * 65536 + 1]
    assert _post(receiver, _request()) == 200

    receiver.misbehave_next(1, Misbehaviour(grpc_body=b"\xff\xfe"))
    with grpc.insecure_channel(f"127.0.0.1:{receiver.grpc_port}") as channel:
        call = channel.unary_unary(
            _EXPORT, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        assert call(_request(), timeout=30) == b"\xff\xfe"
    assert _grpc_call(receiver, _request()) == grpc.StatusCode.OK
    assert [attempt.status for attempt in receiver.attempts] == ["misbehaved", "OK"] * 2
    assert len(receiver.requests) == 2
