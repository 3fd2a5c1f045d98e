"""The viewer's OTLP trace receiver: gRPC (``TraceService/Export``) and HTTP (``POST
/v1/traces``, protobuf or JSON, gzip or not), both feeding one ``TraceStore``.

Decoded with opentelemetry-proto, served by grpcio and ``http.server``, as the test receiver
(``telemetry_run.testing.otlp``) does, without its fault injection and without keeping requests.
Bodies are capped at 4 MiB (gRPC's default receive limit) before and after decompression.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import zlib
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from telemetry_run.viewer.decode import decode_request
from telemetry_run.viewer.store import TraceStore

__all__ = ["MAX_BODY_BYTES", "OTLPViewerReceiver", "host_port"]

MAX_BODY_BYTES = 4 * 1024 * 1024
_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class OTLPViewerReceiver:
    """Both OTLP servers on ``host``; port 0 picks a free one (``grpc_port``/``http_port``
    hold the real ones once ``start()`` returned)."""

    def __init__(self, store: TraceStore, host: str, grpc_port: int, http_port: int) -> None:
        self.store = store
        self.host = host
        self.grpc_port = grpc_port
        self.http_port = http_port
        self._grpc_server: Any = None
        self._http_server: _HTTPServer | None = None
        self._http_thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen on both ports; ``OSError`` naming the port when one cannot be had."""
        try:
            self._start_grpc()
            self._start_http()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=0).wait(5)
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None
        if self._http_thread is not None:
            self._http_thread.join(5)
            self._http_thread = None

    def accept(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        records, invalid = decode_request(request)
        self.store.add(records, invalid)

    def _export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.accept(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def _start_grpc(self) -> None:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="viewer-otlp-grpc"),
            options=[("grpc.so_reuseport", 0)],  # a second viewer must fail, not share the port
        )
        export = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_SERVICE, {"Export": export}),)
        )
        address = host_port(self.host, self.grpc_port)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpcio >= 1.60 raises where older ones returned 0
            raise OSError(f"cannot listen for OTLP/gRPC on {address}: {exc}") from exc
        if not port:
            raise OSError(f"cannot listen for OTLP/gRPC on {address} (in use?)")
        server.start()
        self.grpc_port = port
        self._grpc_server = server

    def _start_http(self) -> None:
        address = (self.host, self.http_port)
        try:
            server = _HTTPServer(address, _HTTPHandler)
        except OSError as exc:
            where = host_port(*address)
            raise OSError(f"cannot listen for OTLP/HTTP on {where}: {exc.strerror}") from exc
        server.receiver = self
        self.http_port = server.server_address[1]
        self._http_server = server
        self._http_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},  # stop() waits at most this long
            name="viewer-otlp-http",
            daemon=True,
        )
        self._http_thread.start()


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    receiver: OTLPViewerReceiver

    def server_bind(self) -> None:
        if ":" in self.server_address[0]:
            import socket

            self.address_family = socket.AF_INET6
            self.socket = socket.socket(self.address_family, self.socket_type)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender that went away mid-request


class _HTTPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the exporter reuses its connection
    server: _HTTPServer
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the terminal is the user's: one line per export would bury the URL

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._reply(400, "text/plain", b"the request body is too large or has no length")
            return
        body = self.rfile.read(length)
        if self.path.split("?", 1)[0] != "/v1/traces":
            self._reply(404, "text/plain", b"not found: OTLP traces go to /v1/traces")
            return
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in ("application/x-protobuf", "application/json"):
            self._reply(415, "text/plain", b"unsupported content type")
            return
        try:
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = _gunzip_capped(body, MAX_BODY_BYTES)
            if content_type == "application/json":
                request = _parse_json(body)
            else:
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        except Exception as exc:  # noqa: BLE001  # a malformed body is the sender's problem
            message = f"cannot decode the request: {exc}"
            self._reply(400, "text/plain", message.encode(errors="replace"))
            return
        self.server.receiver.accept(request)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if content_type == "application/json":
            self._reply(200, content_type, json_format.MessageToJson(response).encode())
        else:
            self._reply(200, content_type, response.SerializeToString())

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _gunzip_capped(data: bytes, limit: int) -> bytes:
    """Decompress gzip members, failing once the output exceeds ``limit`` (a gzip bomb)."""
    out = bytearray()
    rest = data
    while rest:
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += member.decompress(rest, limit + 1 - len(out))
        if len(out) > limit:
            raise ValueError(f"the request body inflates beyond {limit} bytes")
        if not member.eof:
            raise ValueError("the gzip body is truncated")
        rest = member.unused_data
    return bytes(out)


_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON parser wants base64 for bytes fields."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


def _parse_json(data: bytes) -> trace_service_pb2.ExportTraceServiceRequest:
    document = json.loads(data)
    _hex_ids_to_base64(document)
    request = trace_service_pb2.ExportTraceServiceRequest()
    json_format.ParseDict(document, request, ignore_unknown_fields=True)
    return request
