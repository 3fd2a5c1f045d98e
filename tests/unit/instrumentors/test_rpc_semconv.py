"""The RPC semantic-convention helper: names, target and peer parsing, the status rules."""

from __future__ import annotations

import grpc
import pytest

from telemetry_run.instrumentors import _rpc
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.testing import SpanRecorder


@pytest.mark.parametrize(
    ("method", "name", "attributes"),
    [
        ("/demo.v1.Echo/Unary", "demo.v1.Echo/Unary", ("demo.v1.Echo", "Unary")),
        (b"/demo.v1.Echo/Unary", "demo.v1.Echo/Unary", ("demo.v1.Echo", "Unary")),
        ("Echo/Unary", "Echo/Unary", ("Echo", "Unary")),
        ("/nonsense", "nonsense", None),
        ("/a/b/c", "a/b/c", None),
        ("", "grpc", None),
        ("/", "grpc", None),
    ],
)
def test_span_name_and_method_attributes(
    method: str | bytes, name: str, attributes: tuple[str, str] | None
) -> None:
    assert _rpc.span_name(method) == name
    expected: dict[str, str] = {"rpc.system": "grpc"}
    if attributes is not None:
        expected["rpc.service"], expected["rpc.method"] = attributes
    assert _rpc.method_attributes(method) == expected


@pytest.mark.parametrize(
    ("target", "address", "port"),
    [
        ("grpc.io:50051", "grpc.io", 50051),
        ("localhost", "localhost", None),
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("[::1]:50051", "::1", 50051),
        ("[::1]", "::1", None),
        ("::1", "::1", None),
        ("dns:///grpc.io:50051", "grpc.io", 50051),
        ("dns://1.2.3.4/grpc.io:50051", "grpc.io", 50051),
        ("dns://8.8.8.8:53/grpc.io", "grpc.io", None),
        ("dns:grpc.io:443", "grpc.io", 443),
        ("dns:///[2001:db8::1]:443", "2001:db8::1", 443),
        ("unix:///run/x.sock", "/run/x.sock", None),
        ("unix:/run/x.sock", "/run/x.sock", None),
        ("unix:relative.sock", "relative.sock", None),
        ("unix-abstract:name", "name", None),
        ("ipv4:10.0.0.1:5000,10.0.0.2:5000", "10.0.0.1", 5000),
        ("ipv6:[::1]:5000", "::1", 5000),
        ("xds:///my-service", "my-service", None),
        ("grpc.io:notaport", "grpc.io:notaport", None),
        ("grpc.io:99999", "grpc.io:99999", None),
        ("dns:///", "dns:///", None),
        ("two words", "two words", None),
        (b"grpc.io:1", "grpc.io", 1),
        ("  grpc.io:1  ", "grpc.io", 1),
    ],
)
def test_parse_target(target: str | bytes, address: str, port: int | None) -> None:
    assert _rpc.parse_target(target) == (address, port)


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("ipv4:127.0.0.1:12345", ("127.0.0.1", 12345)),
        ("ipv6:[::1]:123", ("::1", 123)),
        ("ipv6:%5B::1%5D:123", ("::1", 123)),  # grpc-core percent-encodes the brackets
        ("unix:/run/x.sock", ("/run/x.sock", None)),
        ("unix:", None),
        ("ipv4:", None),
        ("ipv4:1.2.3.4:x", None),
        ("something-else", None),
        ("vsock:1:2", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_peer(peer: object, expected: tuple[str, int | None] | None) -> None:
    assert _rpc.parse_peer(peer) == expected


def test_code_value_takes_ints_and_grpc_status_codes() -> None:
    assert _rpc.code_value(5) == 5
    assert _rpc.code_value(grpc.StatusCode.NOT_FOUND) == 5
    assert _rpc.code_value(grpc.StatusCode.OK) == 0
    assert _rpc.code_value(None) is None
    assert _rpc.code_value("NOT_FOUND") is None
    assert {_rpc.code_value(code) for code in grpc.StatusCode} == set(_rpc.CODE_NAMES)
    assert all(_rpc.CODE_NAMES[code.value[0]] == code.name for code in grpc.StatusCode)


@pytest.mark.parametrize("code", list(grpc.StatusCode))
def test_status_rules(code: grpc.StatusCode) -> None:
    value = code.value[0]
    assert _rpc.is_error(value, server=False) is (code is not grpc.StatusCode.OK)
    server_faults = {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE"}
    assert _rpc.is_error(value, server=True) is (code.name in server_faults | {"DATA_LOSS"})


def test_client_and_server_attributes() -> None:
    assert _rpc.client_attributes("/a.B/C", "grpc.io", 443) == {
        "rpc.system": "grpc",
        "rpc.service": "a.B",
        "rpc.method": "C",
        "server.address": "grpc.io",
        "server.port": 443,
    }
    assert "server.port" not in _rpc.client_attributes("/a.B/C", "/run/x.sock", None)
    assert "server.address" not in _rpc.client_attributes("/a.B/C", "", None)
    assert _rpc.server_attributes("/a.B/C", "ipv6:[::1]:9") == {
        "rpc.system": "grpc",
        "rpc.service": "a.B",
        "rpc.method": "C",
        "network.peer.address": "::1",
        "network.peer.port": 9,
    }
    assert "network.peer.address" not in _rpc.server_attributes("/a.B/C", "odd")


def _ended(recorder: SpanRecorder, end: object, *args: object) -> dict[str, object]:
    span = recorder.tracer.start_span("call", kind=SpanKind.CLIENT)
    end(span, *args)  # type: ignore[operator]
    span.end()
    (finished,) = recorder.spans
    recorder.clear()
    return {
        "attributes": dict(finished.attributes),
        "status": finished.status.status_code,
        "description": finished.status.description,
        "events": [event.name for event in finished.events],
    }


def test_client_end(span_recorder: SpanRecorder) -> None:
    assert _ended(span_recorder, _rpc.client_end, grpc.StatusCode.OK, None) == {
        "attributes": {"rpc.grpc.status_code": 0},
        "status": StatusCode.UNSET,
        "description": None,
        "events": [],
    }
    assert _ended(span_recorder, _rpc.client_end, grpc.StatusCode.NOT_FOUND, "no user 7") == {
        "attributes": {"rpc.grpc.status_code": 5, "error.type": "NOT_FOUND"},
        "status": StatusCode.ERROR,
        "description": "no user 7",
        "events": [],
    }
    unknown = _ended(span_recorder, _rpc.client_end, None)
    assert unknown["attributes"] == {"rpc.grpc.status_code": 2, "error.type": "UNKNOWN"}


def test_server_end(span_recorder: SpanRecorder) -> None:
    not_found = _ended(span_recorder, _rpc.server_end, grpc.StatusCode.NOT_FOUND, "no user 7")
    assert not_found == {
        "attributes": {"rpc.grpc.status_code": 5},
        "status": StatusCode.UNSET,
        "description": None,
        "events": [],
    }
    internal = _ended(span_recorder, _rpc.server_end, 13, "")
    assert internal["attributes"] == {"rpc.grpc.status_code": 13, "error.type": "INTERNAL"}
    assert internal["status"] is StatusCode.ERROR
    assert internal["description"] is None
    assert _ended(span_recorder, _rpc.server_end, None)["attributes"] == {"rpc.grpc.status_code": 0}
    assert _ended(span_recorder, _rpc.server_end, 42)["attributes"] == {"rpc.grpc.status_code": 42}


def test_exceptions(span_recorder: SpanRecorder) -> None:
    client = _ended(span_recorder, _rpc.client_exception, ValueError("bad"))
    assert client == {
        "attributes": {"error.type": "ValueError"},
        "status": StatusCode.ERROR,
        "description": "ValueError: bad",
        "events": ["exception"],
    }
    with_code = _ended(span_recorder, _rpc.client_exception, OSError("x"), grpc.StatusCode.INTERNAL)
    assert with_code["attributes"] == {"rpc.grpc.status_code": 13, "error.type": "OSError"}
    server = _ended(span_recorder, _rpc.server_exception, KeyError("k"))
    assert server == {
        "attributes": {"rpc.grpc.status_code": 2, "error.type": "UNKNOWN"},
        "status": StatusCode.ERROR,
        "description": "KeyError: 'k'",
        "events": ["exception"],
    }
