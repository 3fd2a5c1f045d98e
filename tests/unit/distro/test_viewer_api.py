"""The viewer's OTLP receiver (gRPC, HTTP protobuf and JSON) and the JSON API its page reads,
on real loopback servers (``telemetry-run --view``)."""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from telemetry_run.viewer.decode import decode_request
from telemetry_run.viewer.receiver import MAX_BODY_BYTES, OTLPViewerReceiver
from telemetry_run.viewer.store import TraceStore
from telemetry_run.viewer.web import ViewerWebServer
from tests.unit.distro.viewer_requests import S, request, span_id, trace_id

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass
class Viewer:
    store: TraceStore
    receiver: OTLPViewerReceiver
    web: ViewerWebServer


@pytest.fixture
def viewer() -> Iterator[Viewer]:
    store = TraceStore(max_traces=5)
    receiver = OTLPViewerReceiver(store, "127.0.0.1", 0, 0)
    web = ViewerWebServer(store, "127.0.0.1", 0)
    receiver.start()
    try:
        web.start()
        yield Viewer(store, receiver, web)
    finally:
        web.stop()
        receiver.stop()


def _http(
    port: int, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _api(viewer: Viewer, path: str) -> Any:
    status, headers, body = _http(viewer.web.port, "GET", path)
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def _post_otlp(viewer: Viewer, body: bytes, content_type: str, **headers: str) -> int:
    status, _, _ = _http(
        viewer.receiver.http_port,
        "POST",
        "/v1/traces",
        body,
        **{"Content-Type": content_type, **headers},
    )
    return status


def test_grpc_http_protobuf_json_and_gzip_all_arrive(viewer: Viewer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{viewer.receiver.grpc_port}") as channel:
        call = channel.unary_unary(
            _EXPORT, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        call(
            request(S(1, 1, name="over grpc")).SerializeToString(),
            timeout=30,
            compression=grpc.Compression.Gzip,  # OTEL_EXPORTER_OTLP_COMPRESSION=gzip
        )
    protobuf = request(S(2, 2, name="over http")).SerializeToString()
    assert _post_otlp(viewer, protobuf, "application/x-protobuf") == 200
    zipped = gzip.compress(request(S(3, 3, name="gzipped")).SerializeToString())
    assert (
        _post_otlp(viewer, zipped, "application/x-protobuf", **{"Content-Encoding": "gzip"}) == 200
    )
    document = json_format.MessageToDict(request(S(4, 4, p=9, name="as json")))
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span.update(traceId=trace_id(4), spanId=span_id(4), parentSpanId=span_id(9))  # OTLP/JSON: hex
    assert _post_otlp(viewer, json.dumps(document).encode(), "application/json") == 200

    names = {line["trace_id"]: line["root_name"] for line in _api(viewer, "/api/traces")["traces"]}
    assert names == {
        trace_id(1): "over grpc",
        trace_id(2): "over http",
        trace_id(3): "gzipped",
        trace_id(4): "as json",
    }
    (json_span,) = _api(viewer, f"/api/traces/{trace_id(4)}")["spans"]
    assert json_span["parent_span_id"] == span_id(9)


def test_a_malformed_or_oversized_body_is_refused_and_the_viewer_carries_on(
    viewer: Viewer,
) -> None:
    assert _post_otlp(viewer, b"\xff\xff not protobuf", "application/x-protobuf") == 400
    assert _post_otlp(viewer, b"{not json", "application/json") == 400
    bomb = gzip.compress(request(S(1, 1, name="x" * (MAX_BODY_BYTES + 1))).SerializeToString())
    assert _post_otlp(viewer, bomb, "application/x-protobuf", **{"Content-Encoding": "gzip"}) == 400
    assert _post_otlp(viewer, b"x", "text/plain") == 415
    assert viewer.store.summaries() == []
    ok = request(S(2, 2)).SerializeToString()
    assert _post_otlp(viewer, ok, "application/x-protobuf") == 200
    assert [line["trace_id"] for line in viewer.store.summaries()] == [trace_id(2)]


def test_the_list_api_filters_by_service_and_errors_and_reports_what_was_dropped(
    viewer: Viewer,
) -> None:
    viewer.store.add(
        *decode_request(
            request(
                *(S(n, n, start_ms=n, end_ms=n + 1) for n in range(1, 7)),
                S(6, 60, p=6, start_ms=6, end_ms=7, error=True, service="billing"),
            )
        )
    )
    everything = _api(viewer, "/api/traces")
    assert [line["trace_id"] for line in everything["traces"]] == [
        trace_id(n) for n in (6, 5, 4, 3, 2)
    ]
    assert everything["stats"]["evicted_traces"] == 1
    assert everything["stats"]["max_traces"] == 5
    (errors,) = _api(viewer, "/api/traces?errors=1")["traces"]
    assert errors["trace_id"] == trace_id(6) and errors["error_count"] == 1
    (billing,) = _api(viewer, "/api/traces?service=billing")["traces"]
    assert billing["trace_id"] == trace_id(6) and billing["span_count"] == 2
    assert _api(viewer, "/api/services") == {"services": ["billing", "shop"]}


def test_one_trace_and_unknown_ones(viewer: Viewer) -> None:
    viewer.store.add(*decode_request(request(S(1, 1, name="root"), S(1, 2, p=1, name="child"))))
    trace = _api(viewer, f"/api/traces/{trace_id(1).upper()}")
    assert [(s["name"], s["depth"]) for s in trace["spans"]] == [("root", 0), ("child", 1)]
    for path in (f"/api/traces/{trace_id(2)}", "/api/traces/not-hex", "/api/traces/../../etc"):
        assert _http(viewer.web.port, "GET", path)[0] == 404, path
    _, _, body = _http(viewer.web.port, "GET", f"/api/traces/{trace_id(2)}")
    assert "evicted" in json.loads(body)["error"]  # the page says why the trace is not there


def test_the_page_and_its_files_are_served_with_a_strict_content_security_policy(
    viewer: Viewer,
) -> None:
    status, headers, body = _http(viewer.web.port, "GET", "/")
    assert status == 200 and b"/static/viewer.js" in body
    assert headers["Content-Type"].startswith("text/html")
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = _http(viewer.web.port, "GET", "/static/viewer.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"innerHTML" not in body  # span data is only ever set as text
    for path in ("/static/../cli.py", "/static/store.py", "/static/%2e%2e/web.py", "/nothing"):
        assert _http(viewer.web.port, "GET", path)[0] == 404, path


def test_a_request_for_another_host_name_is_refused(viewer: Viewer) -> None:
    """DNS rebinding: a page at evil.example resolving to 127.0.0.1 cannot read the traces."""
    status, _, _ = _http(viewer.web.port, "GET", "/api/traces", Host="evil.example")
    assert status == 403
    for host in ("localhost", f"127.0.0.1:{viewer.web.port}", f"localhost:{viewer.web.port}"):
        assert _http(viewer.web.port, "GET", "/api/traces", Host=host)[0] == 200, host


def test_a_port_in_use_is_an_error_naming_it() -> None:
    store = TraceStore()
    first = ViewerWebServer(store, "127.0.0.1", 0)
    first.start()
    try:
        second = ViewerWebServer(store, "127.0.0.1", first.port)
        with pytest.raises(OSError, match=f"127.0.0.1:{first.port}"):
            second.start()
        receiver = OTLPViewerReceiver(store, "127.0.0.1", 0, first.port)
        with pytest.raises(OSError, match=f"OTLP/HTTP on 127.0.0.1:{first.port}"):
            receiver.start()
    finally:
        first.stop()


def test_a_grpc_port_in_use_is_an_error_not_a_shared_port(viewer: Viewer) -> None:
    """grpcio binds with SO_REUSEPORT by default: a second viewer would silently get half of
    the exports."""
    second = OTLPViewerReceiver(TraceStore(), "127.0.0.1", viewer.receiver.grpc_port, 0)
    with pytest.raises(OSError, match=f"OTLP/gRPC on 127.0.0.1:{viewer.receiver.grpc_port}"):
        second.start()
