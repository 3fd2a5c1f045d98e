"""OTLP/gRPC span exporter: ``TraceService/Export`` over one grpcio channel per process.

grpc is imported at the first export, not at construction: the bootstrap builds this exporter
in every instrumented process and ``import grpc`` alone costs tens of milliseconds. The channel
is created then too, and again in a forked child, which never uses (nor closes) its parent's.

The request body comes from the shared encoder already serialized, so the call is made on the
``TraceService/Export`` method of opentelemetry-proto's service descriptor with a pass-through
serializer, and the response comes back as bytes, decoded here with opentelemetry-proto's
message: an OK whose body does not parse (garbage, nested past protobuf's depth limit) is a
success (the receiver took the spans; sending them again would duplicate them) reported by one
throttled warning naming the endpoint, where grpcio's own deserializer would turn it into an
INTERNAL error. An answer longer than ``_MAX_RESPONSE`` (4 MiB, the specification's limit) is
refused by grpc before its status arrives: it fails the batch (counted ``export_failed``), not
retried, with its own warning. The call's deadline bounds everything else a receiver can do
(trickle, hang, reset): grpc ends the call at the deadline whatever the peer sends.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk import forking
from telemetry_run.sdk.diagnostics import Diagnostics
from telemetry_run.sdk.exporters.otlp._common import (
    ENCRYPTED_KEY_MESSAGE,
    Headers,
    OTLPExporterBase,
    call_quietly,
    describe_exception,
    one_line,
    pem_is_encrypted,
    safe_endpoint,
    time_left,
    user_agent,
    wrong_protocol_message,
)
from telemetry_run.sdk.exporters.otlp._retry import (
    Outcome,
    RetryPolicy,
    grpc_retryable,
    parse_status,
)

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = ["DEFAULT_ENDPOINT", "OTLPGrpcSpanExporter", "OTLPSpanExporter"]

DEFAULT_ENDPOINT: Final = "http://localhost:4317"

#: The longest answer read (the specification's default maximum; grpc's default too).
_MAX_RESPONSE: Final = 4 * 1024 * 1024


# Patterns stay strings until a failure needs them (``re`` caches what it compiles): this
# module is imported at every instrumented start-up.
_SCHEME: Final = r"^([A-Za-z][A-Za-z0-9+.-]*)://"  # as _scheme() reads it
_LETTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SCHEME_CHARS: Final = _LETTERS | frozenset("0123456789+.-")

# How grpc-core reports an HTTP/1.x server (a 4318 port, a plain web server) on the other end;
# the wording changed across grpcio versions.
_HTTP1_PEER: Final = (
    r"(?i)http1\.x server|Expected SETTINGS frame|Failed parsing HTTP/2|"
    r"Received http2 header with status|received unexpected content-type|"
    r"Received RST_STREAM with error code 1\b"
)
_TLS_FAILURE: Final = (
    r"(?i)\b(?:ssl|tls) handshake|handshake failed|SSL_ERROR|CERTIFICATE_VERIFY|TSI_"
)

_HINTS: Final = {
    "UNAUTHENTICATED": "the receiver wants credentials: check the exporter headers "
    "(OTEL_EXPORTER_OTLP_HEADERS)",
    "PERMISSION_DENIED": "the credentials are not allowed to write: check the exporter "
    "headers (OTEL_EXPORTER_OTLP_HEADERS)",
    "UNIMPLEMENTED": "the server does not implement OTLP trace export: check the endpoint",
    "NOT_FOUND": "check the endpoint",
    "INVALID_ARGUMENT": "the receiver refused the data",
    "RESOURCE_EXHAUSTED": "the receiver is out of capacity and sent no retry delay",
}


def _scheme(endpoint: str) -> str:
    """The scheme ``_SCHEME`` matches at the start of ``endpoint``, or "" (string operations:
    this runs at every instrumented start-up, where compiling the pattern would cost more)."""
    end = endpoint.find("://")
    scheme = endpoint[:end] if end > 0 else ""
    if scheme and scheme[0] in _LETTERS and set(scheme) <= _SCHEME_CHARS:
        return scheme
    return ""


def _has_port(authority: str) -> bool:
    """``re.search(r":\\d+$", authority)``: a colon and decimal digits at the end (``$`` also
    before a final newline)."""
    text = authority[:-1] if authority.endswith("\n") else authority
    port = text.rpartition(":")[2]
    return ":" in text and port.isdecimal()


def parse_target(endpoint: str, insecure: bool | None) -> tuple[str, bool]:
    """(grpc target, secure) from an OTLP/gRPC endpoint, by the specification's rules.

    ``http://`` means plaintext and ``https://`` TLS whatever ``insecure`` says; without a
    scheme, ``insecure`` decides (TLS unless it is true). Other schemes (``unix:``, ``dns:``) go
    to grpc as they are. A path is meaningless for gRPC and ignored.
    """
    endpoint = endpoint.strip()
    scheme = _scheme(endpoint).lower()
    if scheme in ("http", "https"):
        rest = endpoint[len(scheme) + 3 :]
        authority = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
        if not authority:
            raise ValueError(f"the endpoint {safe_endpoint(endpoint)!r} has no host")
        host_port = authority
        if not _has_port(authority):
            host_port = f"{authority}:{443 if scheme == 'https' else 80}"
        return host_port, scheme == "https"
    if not endpoint:
        raise ValueError("the endpoint is empty")
    return endpoint, not insecure


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class OTLPGrpcSpanExporter(OTLPExporterBase):
    """Exports spans with OTLP over gRPC.

    ``endpoint``: ``http://host:port`` (plaintext), ``https://host:port`` (TLS), or a bare
    ``host:port`` where ``insecure`` decides (TLS unless true). ``headers`` go as metadata on
    every call (keys lower-cased). ``timeout`` (seconds, 0 for none) bounds each export,
    retries included, inside the caller's deadline. ``compression`` is ``"gzip"`` or
    ``"none"``. ``certificate_file`` is the PEM CA bundle that verifies the server;
    ``client_key_file`` and ``client_certificate_file`` the PEM pair for mTLS.
    """

    _protocol_name = "grpc"

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        insecure: bool | None = None,
        headers: Headers | None = None,
        timeout: float = 10.0,
        compression: str | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        retry_policy: RetryPolicy | None = None,
        diagnostics: Diagnostics | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        super().__init__(
            endpoint,
            headers=headers,
            timeout=timeout,
            compression=compression,
            certificate_file=certificate_file,
            client_key_file=client_key_file,
            client_certificate_file=client_certificate_file,
            retry_policy=retry_policy,
            diagnostics=diagnostics,
        )
        self._target, self._secure = parse_target(endpoint, insecure)
        self._metadata = tuple(
            (key.lower(), value.encode() if key.lower().endswith("-bin") else value)
            for key, value in self._headers
        )
        self._channel_options = tuple(channel_options)
        self._channel: Any = None
        self._call: Any = None
        self._channel_pid = 0
        self._channel_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OTLPGrpcSpanExporter({self.endpoint!r})"

    # -- one attempt --------------------------------------------------------------------------

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        from telemetry_run.sdk.exporters.otlp._encode import encode_request

        return encode_request(spans)

    def _send(self, body: bytes, deadline: float) -> Outcome:
        if _fork_guard.unusable:
            message = (
                f"OTLP/gRPC export to {self.endpoint} is impossible in this process: it was "
                "forked while a gRPC export was in flight, and gRPC skips its fork handlers then, "
                "so using it here could crash the process; its "
                f"{self._signal.item}s are counted as failed. Set "
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf for an app that forks at any moment"
            )
            self._report_permanent("forked-mid-call", "%s", message)
            return Outcome(False, error="gRPC is unusable in a child forked during an export")
        _fork_guard.enter(self)
        try:
            return self._send_with_grpc(body, deadline)
        finally:
            _fork_guard.leave()

    def _send_with_grpc(self, body: bytes, deadline: float) -> Outcome:
        try:
            import grpc
        except ImportError as exc:
            message = (
                f"OTLP/gRPC export to {self.endpoint} is impossible: grpc cannot be imported "
                f"({describe_exception(exc)}); install grpcio, or set "
                "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
            )
            self._report_permanent("import", "%s", message)
            return Outcome(False, error=message)
        _fork_guard.watch_forks()
        try:
            call = self._channel_call(grpc)
        except _SetupError as exc:
            self._report_permanent("setup", "%s", exc.message)
            return Outcome(False, error=exc.message)
        timeout = time_left(deadline)
        if timeout is not None and timeout <= 0:
            return Outcome(False, error="the export deadline passed", retryable=True)
        try:
            response = call(
                body,
                timeout=timeout,
                metadata=self._metadata or None,
                compression=grpc.Compression.Gzip if self._gzip else grpc.Compression.NoCompression,
            )
        except grpc.RpcError as err:
            return self._failed(err)
        except ValueError as exc:  # "Cannot invoke RPC on closed channel!"
            if self._stop.is_set():
                return Outcome(False, error="the exporter is shut down")
            if self._call is not call:  # closed for a fork just before the call: send again
                return Outcome(False, error="the channel was closed for a fork", retryable=True)
            return Outcome(False, error=describe_exception(exc))
        return self._accepted(response)

    def _accepted(self, data: Any) -> Outcome:
        """An OK answer: a success whatever its body says (module docstring)."""
        try:
            rejected, message = self._signal.partial_success(bytes(data))
        except Exception as exc:  # noqa: BLE001  # garbage, or nested past the depth limit
            self._diagnostics.warn(
                f"otlp-body:{self.endpoint}",
                "OTLP receiver at %s answered OK but the body of its answer is unusable: it is "
                "not an OTLP response (%s); the spans count as exported",
                self.endpoint,
                describe_exception(exc),
            )
            return Outcome(True)
        self._report_partial_success(rejected, message)
        return Outcome(True, rejected=rejected)

    def _failed(self, err: Any) -> Outcome:
        code_obj = _safe(err.code)
        code = getattr(code_obj, "name", None) or "UNKNOWN"
        details = one_line(str(_safe(err.details) or ""))
        if self._stop.is_set():
            return Outcome(False, error=f"{code} (the exporter is shut down)")
        delay = None
        for key, value in _safe(err.trailing_metadata) or ():
            if key == "grpc-status-details-bin" and isinstance(value, bytes):
                status = parse_status(value)
                if status is not None:
                    delay = status.retry_delay
        error = f"{code}: {details}" if details else code
        if re.search(_HTTP1_PEER, details):
            message = wrong_protocol_message(
                self.endpoint, spoken="HTTP/1.1 or plain HTTP", expected="grpc"
            )
            self._report_permanent("protocol", "%s (gRPC said %s)", message, error)
            return Outcome(False, error=f"{self.endpoint} is not an OTLP/gRPC endpoint")
        if code == "UNAVAILABLE" and re.search(_TLS_FAILURE, details):
            message = self._tls_message(details)
            self._report_permanent("tls", "%s", message)
            return Outcome(False, error=f"TLS handshake with {self.endpoint} failed")
        if code == "UNAVAILABLE" and "Socket closed" in details:
            error += self._closed_hint()
        if code == "RESOURCE_EXHAUSTED" and re.search(r"(?i)larger than max", details):
            # grpc refused the answer before its status arrived: whether the receiver took the
            # spans is unknown, and sending them again could duplicate them.
            self._report_permanent(
                "answer-too-large",
                "OTLP export to %s failed: the receiver's answer is longer than %d MiB, so it "
                "was not read and whether the spans were taken is unknown; they are not sent "
                "again (%s)",
                self.endpoint,
                _MAX_RESPONSE // (1024 * 1024),
                error,
            )
            return Outcome(False, error=f"the answer from {self.endpoint} is too long, not retried")
        if grpc_retryable(code, delay):
            return Outcome(False, error=error, retryable=True, server_delay=delay)
        message = f"OTLP export to {self.endpoint} failed with gRPC status {code}, not retried"
        hint = _HINTS.get(code)
        if hint:
            message += f": {hint}"
        if details:
            message += f" (server said: {details})"
        self._report_permanent(code, "%s", message)
        # The diagnostic above explains; the processor's count line gets the short form.
        return Outcome(False, error=f"gRPC status {code} from {self.endpoint}, not retried")

    def _tls_message(self, details: str) -> str:
        if re.search(r"WRONG_VERSION_NUMBER|record layer|http_request", details, re.IGNORECASE):
            cause = "the endpoint does not speak TLS: use an http:// endpoint for plaintext"
        elif re.search(r"certificate required|PEER_DID_NOT_RETURN|alert", details, re.IGNORECASE):
            cause = (
                "the receiver requires a client certificate (mTLS): set "
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY"
                if self._client_certificate_file is None
                else "the receiver refused the client certificate"
            )
        elif re.search(r"verif|self.signed|unknown ca|issuer", details, re.IGNORECASE):
            cause = (
                "the server certificate is not trusted: set OTEL_EXPORTER_OTLP_CERTIFICATE "
                "to the CA that signed it"
            )
        else:
            cause = "check the certificates and that the endpoint speaks TLS"
        return f"OTLP export to {self.endpoint} failed in the TLS handshake: {cause} ({details})"

    def _closed_hint(self) -> str:
        """What a connection closed during set-up may mean (gRPC cannot say more)."""
        if not self._secure:
            return " (if the receiver expects TLS, use an https:// endpoint)"
        if self._client_certificate_file is None:
            return (
                " (if the receiver requires a client certificate (mTLS), set "
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY)"
            )
        return ""

    # -- the channel --------------------------------------------------------------------------

    def _channel_call(self, grpc: Any) -> Any:
        """The Export callable of this process's channel, created on first use."""
        pid = os.getpid()
        call = self._call  # read once: a fork hook may close the channel meanwhile
        if call is not None and self._channel_pid == pid:
            return call
        with self._channel_lock:
            call = self._call
            if call is not None and self._channel_pid == pid:
                return call
            options = [
                ("grpc.primary_user_agent", user_agent()),
                # A collector that comes back is noticed within a second, not grpc's 120 s:
                # until the channel reconnects every export fails at once, and each failed
                # export costs a batch (measured: up to 2.5 s and 51 failed calls at 5 s).
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
                ("grpc.max_receive_message_length", _MAX_RESPONSE),
                *self._channel_options,
            ]
            if self._secure:
                channel = grpc.secure_channel(self._target, self._credentials(grpc), options)
            else:
                channel = grpc.insecure_channel(self._target, options)
            call = channel.unary_unary(
                _export_method(self._signal.module(), self._signal.service),
                request_serializer=None,  # the body is already serialized
                response_deserializer=None,  # bytes: decoded by _accepted, which never raises
            )
            self._call, self._channel, self._channel_pid = call, channel, pid
            if self._stop.is_set():  # shut down meanwhile: do not leave a channel open
                self._close_channel()
                raise _SetupError("the exporter is shut down")
            return call

    def _credentials(self, grpc: Any) -> Any:
        def read(path: str | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return _read(path)
            except OSError as exc:
                raise _SetupError(
                    f"OTLP/gRPC exporter for {self.endpoint}: cannot read the {what} "
                    f"({type(exc).__name__}: {exc.strerror or exc})"
                ) from None

        private_key = read(self._client_key_file, "client key file")
        if private_key is not None and pem_is_encrypted(private_key):
            raise _SetupError(f"OTLP/gRPC exporter for {self.endpoint}: {ENCRYPTED_KEY_MESSAGE}")
        return grpc.ssl_channel_credentials(
            root_certificates=read(self._certificate_file, "CA certificate file"),
            private_key=private_key,
            certificate_chain=read(self._client_certificate_file, "client certificate file"),
        )

    def _close_transport(self, *, in_use: bool) -> None:
        with self._channel_lock:
            self._close_channel()

    def _cancel_for_fork(self) -> None:
        """``_close_transport`` without waiting for the lock: a fork hook must not block."""
        self._close_channel()

    def _close_channel(self) -> None:
        # Closing the channel cancels a call in flight on another thread (it returns at once);
        # the next export opens a new one.
        channel, self._channel, self._call = self._channel, None, None
        if channel is not None:
            call_quietly(channel.close)

    def _forget_transport(self) -> None:
        if self._channel is not None:  # destroying it would call gRPC: kept, never used
            _fork_guard.inherited_channels.append(self._channel)
        self._channel = None
        self._call = None
        self._channel_pid = 0
        self._channel_lock = threading.Lock()


#: The module's exporter under the name every OTLP exporter module uses.
OTLPSpanExporter = OTLPGrpcSpanExporter


class _ForkGuard:
    """No fork while one of our gRPC calls is in flight, and no gRPC in a child forked so.

    gRPC skips its fork handlers when a thread is inside one of its calls at the fork ("Other
    threads are currently calling into gRPC, skipping fork() handlers"), and the child can then
    abort in gRPC's poller (a failed check), crash or hang, even before it runs any code of its
    own. So before ``os.fork()`` new calls wait, and the calls in flight get ``FORK_WAIT``
    seconds to end; those that do not are cancelled (their channel closed: the batch is
    retried) and get ``FORK_WAIT`` more. A child forked while one is still in flight, or right
    after a cancel (gRPC may still be closing that channel: a child then hung creating its own
    under load), or forked in C without Python's fork hooks, never calls gRPC, nor do its
    children: its exports fail, counted and said once. Its parents' channels are kept, never
    used: destroying them would call gRPC too. A user's own gRPC calls in flight at a fork are
    not seen here."""

    FORK_WAIT = 1.0

    def __init__(self) -> None:
        # Reentrant: a fork from a signal handler that interrupted enter() or leave().
        self._changed = threading.Condition(threading.RLock())
        self._forking = 0  # threads between their before-fork hook and their fork
        self._cancelled = False  # a fork under way had to cancel a call
        self._in_flight: dict[int, OTLPGrpcSpanExporter] = {}
        self._watching = False
        self.unusable = False
        self.inherited_channels: list[Any] = []

    def enter(self, exporter: OTLPGrpcSpanExporter) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._forking == 0, self.FORK_WAIT * 3)
            self._in_flight[threading.get_ident()] = exporter

    def leave(self) -> None:
        with self._changed:
            self._in_flight.pop(threading.get_ident(), None)
            self._changed.notify_all()

    def before_fork(self) -> None:
        with self._changed:
            self._forking += 1
            if self._changed.wait_for(lambda: not self._in_flight, self.FORK_WAIT):
                return
            late = list(self._in_flight.values())
        self._cancelled = True  # gRPC may still be closing that channel at the fork
        for exporter in late:
            exporter._cancel_for_fork()
        with self._changed:
            self._changed.wait_for(lambda: not self._in_flight, self.FORK_WAIT)

    def after_fork_in_parent(self) -> None:
        with self._changed:
            self._forking = max(0, self._forking - 1)
            self._cancelled = False
            self._changed.notify_all()

    def after_fork_in_child(self) -> None:
        if self._in_flight or self._cancelled:
            self.unusable = True
        self._cancelled = False
        self._changed = threading.Condition(threading.RLock())
        self._forking = 0
        self._in_flight = {}

    def watch_forks(self) -> None:
        """Install the before-fork wait, once, after ``import grpc``: hooks registered later run
        earlier, so it runs before the hooks of the modules grpc imports (logging's takes the
        lock a call in flight may need to end)."""
        if self._watching:
            return
        with self._changed:
            watching, self._watching = self._watching, True
        if not watching:
            os.register_at_fork(before=self.before_fork, after_in_parent=self.after_fork_in_parent)


_fork_guard = _ForkGuard()
forking.register(_fork_guard.after_fork_in_child)


class _SetupError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _export_method(service_pb2: Any, service: str = "TraceService") -> str:
    """``/package.Service/Method`` of ``service``'s Export, from opentelemetry-proto."""
    method = service_pb2.DESCRIPTOR.services_by_name[service].methods_by_name["Export"]
    return f"/{method.containing_service.full_name}/{method.name}"


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001  # a half-formed RpcError: treat the part as missing
        return None
