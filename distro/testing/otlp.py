"""A real OTLP receiver for tests (traces and metrics): gRPC and HTTP on 127.0.0.1, with fault
injection.

The same receiver serves our own tests and plugin authors' (the ``otlp_receiver`` fixture of
``telemetry_run.testing``)::

    def test_my_exporter_setup(otlp_receiver):
        exporter = OTLPGrpcSpanExporter(otlp_receiver.grpc_endpoint)
        ...
        (span,) = otlp_receiver.wait_for_spans(1)
        assert span.name == "checkout"

- gRPC: a grpcio server implementing opentelemetry-proto's ``TraceServiceServicer``.
  Per-message decompression is switched off on the server, so the receiver sees the bytes as
  they travelled and can tell (``content_encoding``) whether the client compressed them.
- HTTP: ``POST /v1/traces`` (``http.server`` on a thread, HTTP/1.1 keep-alive) accepting
  ``application/x-protobuf`` and ``application/json`` (OTLP/JSON: hex ids), gzip or not.
- Logs and metrics: the same servers implement the logs and metrics services (gRPC
  ``LogsService/Export`` and ``MetricsService/Export``, HTTP ``POST /v1/logs`` and
  ``POST /v1/metrics``); what arrives is kept in ``log_requests`` (``wait_for_log_records``) and
  ``metric_requests`` (``wait_for_metrics``). The faults below apply to trace calls only: logs
  and metrics are always accepted (``partial_success`` applies to all three signals, as
  ``rejected_log_records`` and ``rejected_data_points``).

Every request is decoded with opentelemetry-proto's ``ExportTraceServiceRequest`` (logs and metrics
with theirs) and kept with the headers (gRPC metadata) it came with. Faults: ``fail_next`` (a gRPC
status, optionally with ``RetryInfo``; an HTTP status, optionally with ``Retry-After``),
``hang``/``release`` (accept and never answer), ``answer_slowly``, ``partial_success``, and
``misbehave_next`` for a hostile or broken collector (a ``Misbehaviour``: any status, headers and
body, a body of gigabytes streamed without being held, headers trickled a byte at a time, a
connection reset mid-answer; on gRPC raw answer bytes behind an OK status). With ``tls`` both
servers speak TLS only, and with a client CA they require a client certificate (mTLS). All ports
are free ones chosen by the system; ``stop()`` ends everything and releases hung calls.

Request bodies are capped at ``max_body_bytes`` (``MAX_BODY_BYTES``, 4 MiB: gRPC's default
maximum receive message size, so both transports accept the same requests) before and after
decompression: a larger body, or a gzip body that inflates beyond the cap (a "gzip bomb"), is
answered 400 (HTTP) or ``INVALID_ARGUMENT`` (gRPC), neither retryable by an OTLP client, and the
receiver never holds more than the cap of decompressed data.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import socket
import ssl
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from telemetry_run.sdk.exporters.otlp._retry import encode_status

__all__ = [
    "MAX_BODY_BYTES",
    "Misbehaviour",
    "OTLPReceiver",
    "ReceivedLogs",
    "ReceivedMetrics",
    "ReceivedRequest",
    "TLSFiles",
    "free_port",
]

#: The largest request body, compressed or decompressed (gRPC's default receive limit).
MAX_BODY_BYTES = 4 * 1024 * 1024

_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
_METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
_HTTP_STATUS_FOR_CODE = {
    "UNAVAILABLE": 503,
    "RESOURCE_EXHAUSTED": 429,
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
}


def free_port() -> int:
    """A loopback port nothing listens on (at the time of the call): a collector that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for the receiver: its certificate and key, and the CA that client
    certificates must chain to (set: mTLS, a client certificate is required)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


@dataclass
class ReceivedRequest:
    """One export call as the receiver saw it.

    ``headers`` are lower-cased names (HTTP headers, or gRPC metadata); ``content_encoding``
    is ``"gzip"`` when the body arrived compressed; ``status`` what the receiver answered
    (``"OK"``/``200`` or the injected fault).
    """

    transport: str
    request: trace_service_pb2.ExportTraceServiceRequest
    headers: dict[str, str]
    content_encoding: str | None
    content_type: str | None
    path: str | None
    received_at: float
    peer: str = ""
    status: str = "OK"

    @property
    def spans(self) -> list[trace_pb2.Span]:
        return [
            span
            for resource_spans in self.request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]


@dataclass
class ReceivedLogs:
    """One logs export call as the receiver saw it (fields as ``ReceivedRequest``)."""

    transport: str
    request: logs_service_pb2.ExportLogsServiceRequest
    headers: dict[str, str]
    content_encoding: str | None
    content_type: str | None
    path: str | None

    @property
    def records(self) -> list[logs_pb2.LogRecord]:
        return [record for _, record in self.scoped_records()]

    def scoped_records(self) -> list[tuple[str, logs_pb2.LogRecord]]:
        """(instrumentation scope name, record) for every record, in order."""
        return [
            (scope_logs.scope.name, record)
            for resource_logs in self.request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]


@dataclass
class ReceivedMetrics:
    """One metrics export call: the decoded request and what it came with (as
    ``ReceivedRequest``)."""

    transport: str
    request: metrics_service_pb2.ExportMetricsServiceRequest
    headers: dict[str, str]
    content_encoding: str | None
    content_type: str | None
    path: str | None

    @property
    def metrics(self) -> list[metrics_pb2.Metric]:
        return [
            metric
            for resource_metrics in self.request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        ]


@dataclass(frozen=True)
class Misbehaviour:
    """One scripted answer of a hostile or broken collector (``OTLPReceiver.misbehave_next``).

    HTTP: ``status`` with ``headers`` (any bytes a latin-1 header can hold) and ``body``; with
    ``body_size`` the body is ``body`` repeated to that many bytes and streamed (a body of
    gigabytes is never held, and the receiver stops writing when the client hangs up);
    ``trickle`` sends the whole answer a byte at a time, that many seconds apart;
    ``reset_after`` sends that many bytes of the answer and then resets the connection (RST).
    ``chunked`` sends the body with chunked transfer coding and no length. The connection is
    closed after the answer, without a ``Connection: close`` unless ``headers`` has one.

    gRPC: ``grpc_body`` is sent as the raw answer message behind an OK status (garbage, a
    nesting past protobuf's limit, megabytes); ``grpc_trailer`` is sent as
    ``grpc-status-details-bin``.
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/x-protobuf"),)
    body: bytes = b""
    body_size: int | None = None
    trickle: float | None = None
    reset_after: int | None = None
    chunked: bool = False
    grpc_body: bytes = b""


@dataclass
class _Fault:
    grpc_code: str
    http_status: int
    retry_delay: float | None
    message: str


@dataclass
class _State:
    faults: deque[_Fault | Misbehaviour] = field(default_factory=deque)
    delay: float = 0.0
    rejected: int = 0
    rejected_message: str = ""
    close_after_answer: bool = False


class OTLPReceiver:
    """The receiver; ``start()`` it (or use it as a context manager) and ``stop()`` it."""

    def __init__(
        self,
        *,
        tls: TLSFiles | None = None,
        grpc: bool = True,
        http: bool = True,
        grpc_port: int = 0,
        http_port: int = 0,
        max_body_bytes: int = MAX_BODY_BYTES,
    ):
        self.tls = tls
        self.max_body_bytes = max_body_bytes
        self._want_grpc = grpc
        self._want_http = http
        self._lock = threading.Condition()
        self._state = _State()
        self._release = threading.Event()
        self._release.set()  # not hanging
        self._stopped = threading.Event()
        self.requests: list[ReceivedRequest] = []  # answered with success
        self.attempts: list[ReceivedRequest] = []  # every call, faults included
        self.tls_failures: list[str] = []  # HTTP handshakes the receiver refused
        self.log_requests: list[ReceivedLogs] = []  # logs export calls (always accepted)
        self.metric_requests: list[ReceivedMetrics] = []
        self._grpc_server: Any = None
        self._http_server: _HTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self.grpc_port = grpc_port  # 0: a free one, picked at start
        self.http_port = http_port

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> OTLPReceiver:
        try:
            if self._want_grpc:
                self._start_grpc()
            if self._want_http:
                self._start_http()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers (bounded) and release every hung call."""
        self._stopped.set()
        self._release.set()
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

    def restart(self) -> OTLPReceiver:
        """Stop, then listen again on the same ports (a collector restarted mid-stream); what
        was received so far is kept."""
        self.stop()
        self._stopped.clear()
        return self.start()

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def grpc_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS), for the gRPC exporter."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """The full OTLP/HTTP traces URL, ``http://127.0.0.1:PORT/v1/traces``."""
        return f"{self.http_base}/v1/traces"

    @property
    def http_metrics_endpoint(self) -> str:
        """The full OTLP/HTTP metrics URL, ``http://127.0.0.1:PORT/v1/metrics``."""
        return f"{self.http_base}/v1/metrics"

    @property
    def http_logs_endpoint(self) -> str:
        """The full OTLP/HTTP logs URL, ``http://127.0.0.1:PORT/v1/logs``."""
        return f"{self.http_base}/v1/logs"

    @property
    def http_base(self) -> str:
        """The HTTP base URL (what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.http_port}"

    # -- faults -----------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        grpc_code: str = "UNAVAILABLE",
        http_status: int | None = None,
        retry_delay: float | None = None,
        message: str = "injected failure",
    ) -> None:
        """Fail the next ``n`` calls: gRPC with ``grpc_code`` (and ``RetryInfo`` when
        ``retry_delay`` is given), HTTP with ``http_status`` (by default the status matching
        the code; ``Retry-After: retry_delay`` when given, whole seconds)."""
        status = http_status or _HTTP_STATUS_FOR_CODE.get(grpc_code, 500)
        with self._lock:
            for _ in range(n):
                self._state.faults.append(_Fault(grpc_code, status, retry_delay, message))

    def misbehave_next(self, n: int, misbehaviour: Misbehaviour) -> None:
        """Answer the next ``n`` calls (after reading each request in full) as ``misbehaviour``
        says. The spans of such a call are recorded in ``attempts`` (its ``status`` is
        ``"misbehaved"``), never in ``requests``."""
        with self._lock:
            self._state.faults.extend([misbehaviour] * n)

    def clear_faults(self) -> None:
        """Forget the failures ``fail_next`` queued and answer at once again."""
        with self._lock:
            self._state.faults.clear()
            self._state.delay = 0.0

    def hang(self) -> None:
        """Accept calls and never answer them until ``release()`` (or ``stop()``)."""
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def answer_slowly(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each call (0 to stop)."""
        with self._lock:
            self._state.delay = seconds

    def close_connections_after_answer(self, close: bool = True) -> None:
        """HTTP: close each connection after answering, without telling the client (the way
        an idle keep-alive connection dies), so its next request finds it closed."""
        with self._lock:
            self._state.close_after_answer = close

    def partial_success(self, rejected: int, message: str = "") -> None:
        """Answer every following successful call with a partial success."""
        with self._lock:
            self._state.rejected = rejected
            self._state.rejected_message = message

    def reset(self) -> None:
        """Forget what was received and every fault."""
        with self._lock:
            self._state = _State()
            self.requests.clear()
            self.attempts.clear()
            self.tls_failures.clear()
            self.log_requests.clear()
            self.metric_requests.clear()
        self._release.set()

    # -- what arrived -----------------------------------------------------------------------

    def spans(self) -> list[trace_pb2.Span]:
        with self._lock:
            return [span for request in self.requests for span in request.spans]

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[trace_pb2.Span]:
        """The spans received once there are at least ``count``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                spans = [span for request in self.requests for span in request.spans]
                if len(spans) >= count:
                    return spans
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} span(s), received {len(spans)}")
                self._lock.wait(left)

    def wait_for_attempts(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Every call received (faults included) once there are at least ``count``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.attempts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} call(s), received {len(self.attempts)}")
                self._lock.wait(left)
            return list(self.attempts)

    def metrics(self) -> list[metrics_pb2.Metric]:
        """Every metric received so far, in arrival order (one per metric per request)."""
        with self._lock:
            return [metric for request in self.metric_requests for metric in request.metrics]

    def wait_for_metrics(self, count: int, timeout: float = 10.0) -> list[metrics_pb2.Metric]:
        """The metrics received once there are at least ``count``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                metrics = [m for request in self.metric_requests for m in request.metrics]
                if len(metrics) >= count:
                    return metrics
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} metric(s), received {len(metrics)}")
                self._lock.wait(left)

    def _metrics_arrived(
        self, received: ReceivedMetrics
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        """Record a metrics call; the answer (a partial success when one is set)."""
        response = metrics_service_pb2.ExportMetricsServiceResponse()
        with self._lock:
            self.metric_requests.append(received)
            if self._state.rejected or self._state.rejected_message:
                response.partial_success.rejected_data_points = self._state.rejected
                response.partial_success.error_message = self._state.rejected_message
            self._lock.notify_all()
        return response

    def log_records(self) -> list[logs_pb2.LogRecord]:
        with self._lock:
            return [record for request in self.log_requests for record in request.records]

    def wait_for_log_records(self, count: int, timeout: float = 10.0) -> list[logs_pb2.LogRecord]:
        """The log records received once there are at least ``count``; AssertionError on
        timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                records = [r for request in self.log_requests for r in request.records]
                if len(records) >= count:
                    return records
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} log record(s), received {len(records)}")
                self._lock.wait(left)

    # -- shared handling --------------------------------------------------------------------

    def _logs_arrived(self, received: ReceivedLogs) -> logs_service_pb2.ExportLogsServiceResponse:
        """Record a logs call; the answer (a partial success when one is set)."""
        response = logs_service_pb2.ExportLogsServiceResponse()
        with self._lock:
            self.log_requests.append(received)
            if self._state.rejected or self._state.rejected_message:
                response.partial_success.rejected_log_records = self._state.rejected
                response.partial_success.error_message = self._state.rejected_message
            self._lock.notify_all()
        return response

    def _arrived(self, received: ReceivedRequest) -> tuple[_Fault | Misbehaviour | None, _State]:
        """Record a call; the fault to answer it with (if any) and the state to answer from."""
        with self._lock:
            fault = self._state.faults.popleft() if self._state.faults else None
            state = _State(
                delay=self._state.delay,
                rejected=self._state.rejected,
                rejected_message=self._state.rejected_message,
                close_after_answer=self._state.close_after_answer,
            )
            if isinstance(fault, Misbehaviour):
                received.status = "misbehaved"
            elif fault is not None:
                received.status = (
                    fault.grpc_code if received.transport == "grpc" else str(fault.http_status)
                )
            self.attempts.append(received)
            self._lock.notify_all()
        return fault, state

    def _wait_before_answer(self, state: _State) -> bool:
        """Hang or answer slowly as told; False when the receiver stopped meanwhile."""
        self._release.wait()
        if state.delay:
            self._stopped.wait(state.delay)
        return not self._stopped.is_set()

    def _accepted(self, received: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(received)
            self._lock.notify_all()

    def _response(self, state: _State) -> trace_service_pb2.ExportTraceServiceResponse:
        response = trace_service_pb2.ExportTraceServiceResponse()
        if state.rejected or state.rejected_message:
            response.partial_success.rejected_spans = state.rejected
            response.partial_success.error_message = state.rejected_message
        return response

    # -- gRPC -------------------------------------------------------------------------------

    def _start_grpc(self) -> None:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="otlp-receiver"),
            options=[
                ("grpc.per_message_decompression", 0),
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", self.max_body_bytes),
            ],
        )
        servicer = _Servicer(self)
        handler = grpc.method_handlers_generic_handler(
            _SERVICE,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    servicer.Export,
                    request_deserializer=_RawRequest,
                    response_serializer=_serialize_response,
                )
            },
        )
        metrics_handler = grpc.method_handlers_generic_handler(
            _METRICS_SERVICE,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    servicer.ExportMetrics,
                    request_deserializer=_RawRequest,
                    response_serializer=_serialize_response,
                )
            },
        )
        logs_servicer = _LogsServicer(self)
        logs_handler = grpc.method_handlers_generic_handler(
            _LOGS_SERVICE,
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    logs_servicer.Export,
                    request_deserializer=_RawRequest,
                    response_serializer=_serialize_response,
                )
            },
        )
        server.add_generic_rpc_handlers((handler, metrics_handler, logs_handler))
        if self.tls is None:
            self.grpc_port = server.add_insecure_port(f"127.0.0.1:{self.grpc_port}")
        else:
            address = f"127.0.0.1:{self.grpc_port}"
            self.grpc_port = server.add_secure_port(address, self._grpc_credentials())
        server.start()
        self._grpc_server = server

    def _grpc_credentials(self) -> Any:
        assert self.tls is not None
        client_ca = _read(self.tls.client_ca_file) if self.tls.client_ca_file else None
        return grpc.ssl_server_credentials(
            [(_read(self.tls.key_file), _read(self.tls.cert_file))],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )

    # -- HTTP -------------------------------------------------------------------------------

    def _start_http(self) -> None:
        server = _HTTPServer(("127.0.0.1", self.http_port), _HTTPHandler)
        server.receiver = self
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
            if self.tls.client_ca_file:
                context.load_verify_locations(self.tls.client_ca_file)
                context.verify_mode = ssl.CERT_REQUIRED
            server.tls_context = context
        self.http_port = server.server_address[1]
        self._http_server = server
        self._http_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="otlp-receiver-http",
            daemon=True,
        )
        self._http_thread.start()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class BodyTooLarge(ValueError):
    """A request body beyond the receiver's cap, as it travelled or once decompressed."""


def gunzip_capped(data: bytes, limit: int) -> bytes:
    """``gzip.decompress(data)`` that stops once the output exceeds ``limit`` bytes: a small
    body that inflates to gigabytes costs at most ``limit + 1`` bytes of memory."""
    out = bytearray()
    rest = data
    while rest:  # one gzip member after the other, as gzip.decompress reads them
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += member.decompress(rest, limit + 1 - len(out))
        if len(out) > limit:
            raise BodyTooLarge(f"the request body inflates beyond {limit} bytes")
        if not member.eof:
            raise ValueError("the gzip body is truncated")
        rest = member.unused_data
    return bytes(out)


class _RawRequest:
    """The request as it travelled (compressed or not); ``decode`` it within the cap."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.compressed = data[:2] == b"\x1f\x8b"

    def decode_logs(self, limit: int) -> logs_service_pb2.ExportLogsServiceRequest:
        data = gunzip_capped(self.data, limit) if self.compressed else self.data
        request: logs_service_pb2.ExportLogsServiceRequest = (
            logs_service_pb2.ExportLogsServiceRequest.FromString(data)
        )
        return request

    def decode(self, limit: int) -> trace_service_pb2.ExportTraceServiceRequest:
        data = gunzip_capped(self.data, limit) if self.compressed else self.data
        request: trace_service_pb2.ExportTraceServiceRequest = (
            trace_service_pb2.ExportTraceServiceRequest.FromString(data)
        )
        return request


def _serialize_response(response: Any) -> bytes:
    """A response message serialized; a misbehaviour's raw bytes as they are."""
    if isinstance(response, bytes):
        return response
    data: bytes = response.SerializeToString()
    return data


class _Servicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(  # the generated servicer's name
        self, request: Any, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        receiver = self._receiver
        try:
            decoded = request.decode(receiver.max_body_bytes)
        except Exception as exc:  # noqa: BLE001  # a malformed body is the client's problem
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot decode the request: {exc}")
        received = ReceivedRequest(
            "grpc",
            decoded,
            {key: value for key, value in context.invocation_metadata() or ()},
            "gzip" if request.compressed else None,
            "application/grpc",
            f"/{_SERVICE}/Export",
            time.monotonic(),
            peer=context.peer(),
        )
        fault, state = receiver._arrived(received)
        if not receiver._wait_before_answer(state):
            context.abort(grpc.StatusCode.UNAVAILABLE, "receiver stopped")
        if isinstance(fault, Misbehaviour):
            return fault.grpc_body  # type: ignore[return-value]  # _serialize_response passes it
        if fault is not None:
            if fault.retry_delay is not None:
                code_number = getattr(grpc.StatusCode, fault.grpc_code).value[0]
                context.set_trailing_metadata(
                    (
                        (
                            "grpc-status-details-bin",
                            encode_status(code_number, fault.message, fault.retry_delay),
                        ),
                    )
                )
            context.abort(getattr(grpc.StatusCode, fault.grpc_code), fault.message)
        receiver._accepted(received)
        return receiver._response(state)

    def ExportMetrics(  # the MetricsService's Export, beside TraceService's
        self, request: Any, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        receiver = self._receiver
        try:
            data = (
                gunzip_capped(request.data, receiver.max_body_bytes)
                if request.compressed
                else request.data
            )
            decoded = metrics_service_pb2.ExportMetricsServiceRequest.FromString(data)
        except Exception as exc:  # noqa: BLE001  # a malformed body is the client's problem
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot decode the request: {exc}")
        return receiver._metrics_arrived(
            ReceivedMetrics(
                "grpc",
                decoded,
                {key: value for key, value in context.invocation_metadata() or ()},
                "gzip" if request.compressed else None,
                "application/grpc",
                f"/{_METRICS_SERVICE}/Export",
            )
        )


class _LogsServicer:
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(  # the generated servicer's name
        self, request: Any, context: Any
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        receiver = self._receiver
        try:
            decoded = request.decode_logs(receiver.max_body_bytes)
        except Exception as exc:  # noqa: BLE001  # a malformed body is the client's problem
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot decode the request: {exc}")
        return receiver._logs_arrived(
            ReceivedLogs(
                "grpc",
                decoded,
                {key: value for key, value in context.invocation_metadata() or ()},
                "gzip" if request.compressed else None,
                "application/grpc",
                f"/{_LOGS_SERVICE}/Export",
            )
        )


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    receiver: OTLPReceiver
    tls_context: ssl.SSLContext | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-request is not the test's failure

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.tls_context is not None:
            # The handshake runs on the handler's thread (see _HTTPHandler.setup), so a client
            # that never completes it cannot block the accept loop.
            sock = self.tls_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address


class _HTTPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the exporter reuses its connection
    server: _HTTPServer
    timeout = 30

    def setup(self) -> None:
        super().setup()
        self._handshake_failed = False
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError) as exc:
                self.server.receiver.tls_failures.append(f"{type(exc).__name__}: {exc}")
                self._handshake_failed = True

    def handle(self) -> None:
        if self._handshake_failed:
            return
        # A client that went away (or was refused in TLS) needs no answer.
        with contextlib.suppress(OSError, ssl.SSLError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read stderr

    def do_POST(self) -> None:
        receiver = self.server.receiver
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= receiver.max_body_bytes:  # not read at all: the connection goes
            self.close_connection = True
            self._reply(400, "text/plain", b"the request body is too large or has no length")
            return
        body = self.rfile.read(length)
        headers = {key.lower(): value for key, value in self.headers.items()}
        path = self.path.split("?", 1)[0]
        if path == "/v1/metrics":
            self._metrics(body, headers, path)
            return
        if path == "/v1/logs":
            self._logs(body, headers, path)
            return
        if path != "/v1/traces":
            self._reply(404, "text/plain", b"not found: OTLP traces go to /v1/traces")
            return
        decoded = self._decode(body, headers, trace_service_pb2.ExportTraceServiceRequest)
        if decoded is None:
            return
        request, encoding, content_type = decoded
        received = ReceivedRequest(
            "http",
            request,
            headers,
            encoding,
            content_type,
            path,
            time.monotonic(),
            peer=f"{self.client_address[0]}:{self.client_address[1]}",
        )
        fault, state = receiver._arrived(received)
        if not receiver._wait_before_answer(state):
            self.close_connection = True
            return
        if isinstance(fault, Misbehaviour):
            self.close_connection = True
            self._misbehave(fault)
            return
        if fault is not None:
            extra = {}
            if fault.retry_delay is not None:
                extra["Retry-After"] = str(round(fault.retry_delay))
            self._status(fault.http_status, content_type, fault.message, extra)
            return
        receiver._accepted(received)
        response = receiver._response(state)
        if state.close_after_answer:
            self.close_connection = True
        self._answer(content_type, response)

    def _logs(self, body: bytes, headers: dict[str, str], path: str) -> None:
        decoded = self._decode(body, headers, logs_service_pb2.ExportLogsServiceRequest)
        if decoded is not None:
            request, encoding, content_type = decoded
            received = ReceivedLogs("http", request, headers, encoding, content_type, path)
            self._answer(content_type, self.server.receiver._logs_arrived(received))

    def _metrics(self, body: bytes, headers: dict[str, str], path: str) -> None:
        decoded = self._decode(body, headers, metrics_service_pb2.ExportMetricsServiceRequest)
        if decoded is not None:
            request, encoding, content_type = decoded
            received = ReceivedMetrics("http", request, headers, encoding, content_type, path)
            self._answer(content_type, self.server.receiver._metrics_arrived(received))

    def _decode(
        self, body: bytes, headers: dict[str, str], message: Any
    ) -> tuple[Any, str | None, str] | None:
        """The body as a ``message`` (a request class; protobuf or JSON, gzipped or not), its
        content encoding and type; None once the client has been answered 415 or 400."""
        encoding = (headers.get("content-encoding") or "").lower() or None
        content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
        limit = self.server.receiver.max_body_bytes
        try:
            data = gunzip_capped(body, limit) if encoding == "gzip" else body
            if content_type == "application/json":
                request = _parse_json(data, message)
            elif content_type == "application/x-protobuf":
                request = message.FromString(data)
            else:
                self._reply(415, "text/plain", b"unsupported content type")
                return None
        except Exception as exc:  # noqa: BLE001  # a malformed body is the client's problem
            self._status(400, content_type, f"cannot decode the request: {exc}")
            return None
        return request, encoding, content_type

    def _answer(self, content_type: str, response: Any) -> None:
        """200 with ``response`` in the request's own encoding."""
        if content_type == "application/json":
            self._reply(200, content_type, json_format.MessageToJson(response).encode())
        else:
            self._reply(200, content_type, response.SerializeToString())

    def _misbehave(self, how: Misbehaviour) -> None:
        """Write the scripted answer straight to the socket (OSError: the client hung up)."""
        head = [f"HTTP/1.1 {how.status} Misbehaving".encode()]
        head += [f"{name}: {value}".encode("latin-1") for name, value in how.headers]
        size = len(how.body) if how.body_size is None else how.body_size
        if how.chunked:
            head.append(b"Transfer-Encoding: chunked")
        else:
            head.append(f"Content-Length: {size}".encode())
        sock = self.connection
        if how.reset_after is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sent = 0

        def send(data: bytes) -> bool:
            """False once the answer should stop (the scripted reset, or the receiver stops)."""
            nonlocal sent
            if how.reset_after is not None:
                data = data[: max(0, how.reset_after - sent)]
            if how.trickle is not None:
                for i in range(len(data)):
                    if self.server.receiver._stopped.wait(how.trickle):
                        return False
                    sock.sendall(data[i : i + 1])
            else:
                sock.sendall(data)
            sent += len(data)
            return how.reset_after is None or sent < how.reset_after

        if send(b"\r\n".join(head) + b"\r\n\r\n"):
            self._send_body(how, size, send)
        if how.reset_after is not None:
            sock.close()  # SO_LINGER 0: the close is a reset

    def _send_body(self, how: Misbehaviour, size: int, send: Any) -> None:
        piece = how.body or b"\x00"
        if how.body_size is not None and len(piece) < 65536:
            piece = piece * (65536 // len(piece) + 1)
        left = size
        while left > 0 and not self.server.receiver._stopped.is_set():
            data = piece[:left]
            left -= len(data)
            if how.chunked:
                data = b"%x\r\n%s\r\n" % (len(data), data)
            if not send(data):
                return
        if how.chunked:
            send(b"0\r\n\r\n")

    def _status(
        self,
        status: int,
        content_type: str,
        message: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        code = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 503: 14}.get(status, 2)
        if content_type == "application/json":
            body = json.dumps({"code": code, "message": message}).encode()
        else:
            content_type = "application/x-protobuf"
            body = encode_status(code, message)
        self._reply(status, content_type, body, extra)

    def _reply(
        self,
        status: int,
        content_type: str,
        body: bytes,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


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


def _parse_json(data: bytes, message: Any) -> Any:
    """OTLP/JSON (ids in hex, as the spec writes them) into ``message``."""
    document = json.loads(data)
    _hex_ids_to_base64(document)
    request = message()
    json_format.ParseDict(document, request)
    return request


def iter_spans(requests: list[ReceivedRequest]) -> Iterator[trace_pb2.Span]:
    for request in requests:
        yield from request.spans
