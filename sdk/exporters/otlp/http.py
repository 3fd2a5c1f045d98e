"""OTLP/HTTP span exporter (``http/protobuf`` and ``http/json``) on the standard library.

One persistent ``http.client`` connection per exporter per process: created at the first
export, reused while the receiver keeps it open, replaced after any failure, and never used or
closed by a forked child (which opens its own). A reused connection the receiver closed while
idle is reopened at once, without counting as a retry.

Every attempt is bounded by the time left to the deadline (connect, send, and the answer as a
whole: each read gets what is left, so headers trickling a byte a second end at the deadline),
the statuses the specification calls transient (429, 502, 503, 504) and connection failures are
retried honouring ``Retry-After`` (within ``_retry``'s rules), and ``shutdown()`` shuts the
socket of a request in flight.

Nothing a receiver answers escapes ``export()``. The body is read up to ``_MAX_RESPONSE`` (4 MiB,
the specification's response limit) and no further: a longer one is left unread and its
connection closed. A 2xx is a success whatever follows it (the receiver took the spans;
sending them again would duplicate them): a body that is too long, cut by a reset, does not
parse (garbage, JSON nested thousands deep) or is not an OTLP response is reported by one
throttled warning naming the endpoint. Any other status is judged by its status line alone
when its body is unreadable.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk.diagnostics import Diagnostics
from telemetry_run.sdk.exporters.otlp._common import (
    ENCRYPTED_KEY_MESSAGE,
    Headers,
    OTLPExporterBase,
    call_quietly,
    describe_exception,
    one_line,
    time_left,
    user_agent,
    wrong_protocol_message,
)
from telemetry_run.sdk.exporters.otlp._retry import (
    Outcome,
    RetryPolicy,
    http_retryable,
    parse_retry_after,
    parse_status,
)

if TYPE_CHECKING:
    import http.client
    import ssl

    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = ["DEFAULT_ENDPOINT", "OTLPHttpSpanExporter", "OTLPSpanExporter"]

DEFAULT_ENDPOINT: Final = "http://localhost:4318/v1/traces"

#: Responses larger than this (the specification's default maximum) are not read.
_MAX_RESPONSE: Final = 4 * 1024 * 1024
_MEBIBYTE: Final = 1024 * 1024

_CONTENT_TYPES: Final = {"http/protobuf": "application/x-protobuf", "http/json": "application/json"}


_HINTS: Final = {
    400: "the receiver refused the data",
    401: "the receiver wants credentials: check the exporter headers (OTEL_EXPORTER_OTLP_HEADERS)",
    403: "the credentials are not allowed to write: check the exporter headers "
    "(OTEL_EXPORTER_OTLP_HEADERS)",
    404: "no OTLP receiver at this path: OTLP/HTTP traces go to /v1/traces "
    "(OTEL_EXPORTER_OTLP_ENDPOINT gets it appended, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used "
    "as is)",
    405: "this URL does not accept POST: check the endpoint path (/v1/traces)",
    413: "the batch is larger than the receiver accepts: lower OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    415: "the receiver does not accept this content type: check OTEL_EXPORTER_OTLP_PROTOCOL "
    "(http/protobuf or http/json)",
}


_HOST_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def _plain_url(text: str) -> tuple[bool, str, int, str] | None:
    """``parse_url``'s answer for ``http(s)://name-or-ipv4[:port][/path]`` (what endpoints are),
    with string operations: the exporter is built at start-up, where importing urllib.parse
    (and ipaddress with it) is not paid for the common case. None for anything else."""
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https") or not rest.isascii():
        return None
    if any(c in rest for c in "@?#[]%\\ \t"):
        return None
    authority, slash, path = rest.partition("/")
    host, colon, port_text = authority.partition(":")
    if not host or not _HOST_CHARS.issuperset(host):
        return None
    if colon:
        if not (port_text.isdigit() and len(port_text) <= 5 and 0 < int(port_text) <= 65535):
            return None
        port = int(port_text)
    else:
        port = 443 if scheme == "https" else 80
    return scheme == "https", host.lower(), port, "/" + path if slash else "/"


def parse_url(endpoint: str) -> tuple[bool, str, int, str]:
    """(secure, host, port, path with query) of an OTLP/HTTP endpoint URL."""
    plain = _plain_url(endpoint.strip())
    if plain is not None:
        return plain
    import urllib.parse  # an unusual URL (and ipaddress with it): not at start-up

    parts = urllib.parse.urlsplit(endpoint.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(
            f"an OTLP/HTTP endpoint must be an http:// or https:// URL, got {scheme!r}"
        )
    host = parts.hostname
    if not host:
        raise ValueError("the OTLP/HTTP endpoint has no host")
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme == "https", host, port, path


def _looks_like_http2(line: str) -> bool:
    """A status line that is binary: the frames an HTTP/2-only (gRPC) server sends first."""
    return bool(line) and (line[0] == "\x00" or any(ord(c) < 9 for c in line[:16]))


class OTLPHttpSpanExporter(OTLPExporterBase):
    """Exports spans with OTLP over HTTP/1.1: ``protocol`` ``"http/protobuf"`` or ``"http/json"``.

    ``endpoint`` is the full URL requests are POSTed to (``.../v1/traces``). ``headers`` are
    sent on every request. ``timeout`` (seconds, 0 for none) bounds each export, retries
    included, inside the caller's deadline. ``compression`` is ``"gzip"`` or ``"none"``.
    ``certificate_file`` is the PEM CA bundle that verifies the server (the system's otherwise);
    ``client_key_file`` and ``client_certificate_file`` the PEM pair for mTLS.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        protocol: str = "http/protobuf",
        headers: Headers | None = None,
        timeout: float = 10.0,
        compression: str | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        retry_policy: RetryPolicy | None = None,
        diagnostics: Diagnostics | None = None,
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
        if protocol not in _CONTENT_TYPES:
            raise ValueError(f"protocol must be http/protobuf or http/json, got {protocol!r}")
        self._protocol_name = protocol
        self._json = protocol == "http/json"
        self._secure, self._host, self._port, self._path = parse_url(endpoint)
        request_headers = dict(self._headers)
        request_headers["Content-Type"] = _CONTENT_TYPES[protocol]
        if not any(key.lower() == "user-agent" for key in request_headers):
            request_headers["User-Agent"] = user_agent()
        if self._gzip:
            request_headers["Content-Encoding"] = "gzip"
        self._request_headers = request_headers
        self._ssl_context: ssl.SSLContext | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._conn_pid = 0

    def __repr__(self) -> str:
        return f"OTLPHttpSpanExporter({self.endpoint!r}, protocol={self._protocol_name!r})"

    # -- one attempt --------------------------------------------------------------------------

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        from telemetry_run.sdk.exporters.otlp import _encode

        body = _encode.encode_request_json(spans) if self._json else _encode.encode_request(spans)
        return self._compress(body)

    def _compress(self, body: bytes) -> bytes:
        """``body`` as sent: gzipped when compression is on (every signal's body)."""
        if self._gzip:
            import zlib

            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip format
            body = compressor.compress(body) + compressor.flush()
        return body

    def _send(self, body: bytes, deadline: float) -> Outcome:
        import http.client

        stale = (
            http.client.RemoteDisconnected,
            BrokenPipeError,
            ConnectionResetError,
            ConnectionAbortedError,
        )
        for _ in range(2):  # a second time only when a reused connection turned out stale
            try:
                conn, fresh = self._connection()
            except _SetupError as exc:
                self._report_permanent("setup", "%s", exc.message)
                return Outcome(False, error=exc.message)
            try:
                response = self._round_trip(conn, fresh, body, deadline)
            except Exception as exc:  # noqa: BLE001  # every transport failure is classified
                self._drop_connection()
                if self._stop.is_set():
                    return Outcome(False, error="the exporter is shut down")
                if not fresh and isinstance(exc, stale):
                    continue
                return self._connection_failed(exc, fresh)
            status, reason, headers, data, unread = self._read_body(response)
            return self._answered(status, reason, headers, data, unread)
        return Outcome(False, error="the connection was closed twice", retryable=True)

    def _round_trip(
        self, conn: http.client.HTTPConnection, fresh: bool, body: bytes, deadline: float
    ) -> http.client.HTTPResponse:
        """Send the request; the response once its status line and headers are in."""
        left = time_left(deadline)
        if left is not None and left <= 0:
            raise TimeoutError("the export deadline passed")
        if fresh:
            conn.timeout = left
        elif conn.sock is not None:
            conn.sock.settimeout(left)
        conn.request("POST", self._path, body, self._request_headers)
        left = time_left(deadline)
        if left is not None and left <= 0:
            raise TimeoutError("the export deadline passed")
        if conn.sock is not None:
            conn.sock.settimeout(left)
        # The socket timeout bounds each read, not the answer: a receiver trickling a byte at a
        # time would hold the export past its deadline, so every read gets what is left of it.
        conn.response_class = functools.partial(_deadline_response, deadline=deadline)  # type: ignore[assignment]  # http.client only calls it
        return conn.getresponse()

    def _read_body(
        self, response: http.client.HTTPResponse
    ) -> tuple[int, str, http.client.HTTPMessage, bytes, str]:
        """(status, reason, headers, body, why the body is incomplete or "") of an answer whose
        head is in: at most ``_MAX_RESPONSE`` bytes are read, within the same deadline."""
        unread = ""
        try:
            data = response.read(_MAX_RESPONSE + 1)
        except Exception as exc:  # noqa: BLE001  # a reset, a cut or a trickle past the deadline
            data, unread = b"", f"it broke off ({describe_exception(exc)})"
            self._drop_connection()
        else:
            if len(data) > _MAX_RESPONSE:
                data = b""
                unread = f"it is longer than {_MAX_RESPONSE // _MEBIBYTE} MiB (not read further)"
                self._drop_connection()  # the rest is never read: the connection cannot be reused
            elif response.will_close:
                self._drop_connection()
        return response.status, response.reason, response.headers, data, unread

    def _answered(
        self,
        status: int,
        reason: str,
        headers: http.client.HTTPMessage,
        data: bytes,
        unread: str = "",
    ) -> Outcome:
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if 200 <= status < 300:
            # Accepted, whatever the body: the spans are not sent again.
            if unread:
                self._report_body(status, unread)
                return Outcome(True)
            parsed = self._partial_success(content_type, data)
            if parsed is None:
                self._report_body(
                    status, f"it is not an OTLP response ({content_type or 'no type'})"
                )
                return Outcome(True)
            rejected, message = parsed
            self._report_partial_success(rejected, message)
            return Outcome(True, rejected=rejected)
        shown = f"HTTP {status} {reason}".rstrip()
        if http_retryable(status):
            delay = parse_retry_after(headers.get("Retry-After"))
            return Outcome(False, error=shown, retryable=True, server_delay=delay)
        message = f"OTLP export to {self.endpoint} failed with {shown}, not retried"
        hint = _HINTS.get(status)
        if hint is None and 300 <= status < 400:
            hint = "redirects are not followed: configure the final URL"
        if hint:
            message += f": {hint}"
        said = _server_message(content_type, data)
        if said:
            message += f" (server said: {said})"
        self._report_permanent(str(status), "%s", message)
        # The diagnostic above explains; the processor's count line gets the short form.
        return Outcome(False, error=f"{shown} from {self.endpoint}, not retried")

    def _report_body(self, status: int, why: str) -> None:
        self._diagnostics.warn(
            f"otlp-body:{self._shown_endpoint}",
            "OTLP receiver at %s answered HTTP %d but the body of its answer is unusable: %s; "
            "the spans count as exported",
            self._shown_endpoint,
            status,
            why,
        )

    def _partial_success(self, content_type: str, data: bytes) -> tuple[int, str] | None:
        """(rejected spans, message) of a 2xx answer's body; None when it is not one."""
        if not data:
            return 0, ""
        try:
            if content_type == "application/json" or (self._json and data[:1] == b"{"):
                import json

                document = json.loads(data)
                partial = document.get("partialSuccess") or document.get("partial_success") or {}
                signal = self._signal
                rejected = partial.get(signal.rejected_json, partial.get(signal.rejected, 0))
                message = partial.get("errorMessage", partial.get("error_message", ""))
                return int(rejected or 0), str(message or "")
            return self._signal.partial_success(data)
        except Exception:  # noqa: BLE001  # RecursionError included: JSON nested thousands deep
            return None

    def _connection_failed(self, exc: Exception, fresh: bool) -> Outcome:
        import http.client
        import socket
        import ssl

        if isinstance(exc, http.client.BadStatusLine) and _looks_like_http2(str(exc.args[0])):
            message = wrong_protocol_message(
                self.endpoint, spoken="HTTP/2 (it looks like an OTLP/gRPC port)", expected="http"
            )
            self._report_permanent("protocol", "%s", message)
            return Outcome(False, error=f"{self.endpoint} is not an OTLP/HTTP endpoint")
        if isinstance(exc, ssl.SSLError):
            message = self._tls_message(exc)
            self._report_permanent("tls", "%s", message)
            return Outcome(False, error=f"TLS handshake with {self.endpoint} failed")
        if isinstance(exc, TimeoutError | socket.timeout):
            return Outcome(False, error="no answer before the deadline", retryable=True)
        error = describe_exception(exc)
        if fresh and isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError):
            error += self._closed_hint()
        return Outcome(False, error=error, retryable=True)

    def _closed_hint(self) -> str:
        """What a new connection closed before any answer may mean."""
        if not self._secure:
            return (
                " (the receiver closed a new connection without answering: if it expects TLS, "
                "use an https:// endpoint)"
            )
        if self._client_certificate_file is None:
            return (
                " (the receiver closed the TLS connection: if it requires a client certificate "
                "(mTLS), set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and "
                "OTEL_EXPORTER_OTLP_CLIENT_KEY)"
            )
        return ""

    def _tls_message(self, exc: ssl.SSLError) -> str:
        import ssl

        text = f"{exc.reason or ''} {exc}"
        upper = text.upper()
        if isinstance(exc, ssl.SSLCertVerificationError):
            cause = (
                "the server certificate is not trusted: set OTEL_EXPORTER_OTLP_CERTIFICATE to "
                "the CA that signed it"
            )
        elif (
            "CERTIFICATE_REQUIRED" in upper
            or "HANDSHAKE_FAILURE" in upper
            or (isinstance(exc, ssl.SSLEOFError) and self._client_certificate_file is None)
        ):
            cause = (
                "the receiver requires a client certificate (mTLS): set "
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY"
                if self._client_certificate_file is None
                else "the receiver refused the client certificate"
            )
        elif "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER" in upper:
            cause = "the endpoint does not speak TLS: use an http:// endpoint for plaintext"
        else:
            cause = "check the certificates and that the endpoint speaks TLS"
        return (
            f"OTLP export to {self.endpoint} failed in the TLS handshake: {cause} "
            f"({describe_exception(exc)})"
        )

    # -- the connection -----------------------------------------------------------------------

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This process's connection, and whether it was just created (not yet connected)."""
        pid = os.getpid()
        if self._conn is not None and self._conn_pid == pid:
            return self._conn, False
        import http.client

        self._conn = None  # a parent's, inherited by a fork: never used, never closed here
        conn: http.client.HTTPConnection
        if self._secure:
            conn = http.client.HTTPSConnection(self._host, self._port, context=self._tls_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port)
        self._conn, self._conn_pid = conn, pid
        return conn, True

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is not None:
            return self._ssl_context
        import ssl

        try:
            context = ssl.create_default_context(cafile=self._certificate_file)
        except (OSError, ssl.SSLError) as exc:
            raise _SetupError(
                f"OTLP/HTTP exporter for {self.endpoint}: cannot load the CA certificate file "
                f"({describe_exception(exc)})"
            ) from None
        if self._client_certificate_file is not None:
            try:
                context.load_cert_chain(
                    self._client_certificate_file, self._client_key_file, password=_no_passphrase
                )
            except _PassphraseAsked:
                raise _SetupError(
                    f"OTLP/HTTP exporter for {self.endpoint}: {ENCRYPTED_KEY_MESSAGE}"
                ) from None
            except (OSError, ssl.SSLError) as exc:
                # The key's path stays out of the message: only what went wrong.
                why = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or "invalid"
                raise _SetupError(
                    f"OTLP/HTTP exporter for {self.endpoint}: cannot load the client "
                    f"certificate and key ({type(exc).__name__}: {why})"
                ) from None
        self._ssl_context = context
        return context

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            call_quietly(conn.close)

    def _close_transport(self, *, in_use: bool) -> None:
        conn = self._conn
        if conn is None:
            return
        if in_use:
            # Another thread is inside a request: shutting the socket makes its read or write
            # fail now; that thread then closes the connection itself.
            sock = conn.sock
            if sock is not None:
                import socket

                call_quietly(lambda: sock.shutdown(socket.SHUT_RDWR))
            return
        self._drop_connection()

    def _forget_transport(self) -> None:
        self._conn = None
        self._conn_pid = 0


#: The module's exporter under the name every OTLP exporter module uses.
OTLPSpanExporter = OTLPHttpSpanExporter


class _DeadlineReader(io.RawIOBase):
    """A socket's reads as a stream, each bounded by what is left of one deadline.

    It reads through ``sock.makefile``, as ``http.client`` does, so that the connection closing
    its socket (it does as soon as the head says ``Connection: close``) leaves the file open
    until the body is read, instead of failing the read with EBADF.
    """

    def __init__(self, sock: Any, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = time_left(self._deadline)
        if left is not None:
            if left <= 0:
                raise TimeoutError("the export deadline passed")
            self._sock.settimeout(left)
        return int(self._raw.readinto(buffer) or 0)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _deadline_response_class() -> type:
    import http.client

    class DeadlineResponse(http.client.HTTPResponse):
        """``HTTPResponse`` reading through ``_DeadlineReader``."""

        def __init__(self, sock: Any, *args: Any, deadline: float, **kwargs: Any) -> None:
            super().__init__(sock, *args, **kwargs)
            self.fp = io.BufferedReader(_DeadlineReader(sock, deadline))

    return DeadlineResponse


def _deadline_response(sock: Any, *args: Any, deadline: float, **kwargs: Any) -> Any:
    """What ``HTTPConnection.getresponse`` builds in place of its ``response_class``."""
    global _response_class
    if _response_class is None:
        _response_class = _deadline_response_class()
    return _response_class(sock, *args, deadline=deadline, **kwargs)


_response_class: type | None = None  # built on first use: http.client is imported lazily


class _PassphraseAsked(Exception):
    """OpenSSL asked for the client key's passphrase: the key is encrypted."""


def _no_passphrase() -> bytes:
    # Given as load_cert_chain's password: without it OpenSSL prompts on the terminal and the
    # process blocks there; raising makes load_cert_chain fail with this exception instead.
    raise _PassphraseAsked


class _SetupError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _server_message(content_type: str, data: bytes) -> str:
    """The message of an error response (a google.rpc.Status, JSON or text), one line."""
    if not data:
        return ""
    try:
        if content_type == "application/x-protobuf":
            status = parse_status(data)
            return one_line(status.message) if status is not None else ""
        if content_type == "application/json":
            import json

            document: Any = json.loads(data)
            if isinstance(document, dict):
                return one_line(str(document.get("message", "")))
            return ""
        if content_type.startswith("text/"):
            return one_line(data[:1000].decode("utf-8", "replace"))
    except Exception:  # noqa: BLE001  # RecursionError included: JSON nested thousands deep
        return ""
    return ""
