"""The live checks ``telemetry-run --doctor`` runs against one OTLP endpoint, step by step.

DNS, TCP, the TLS handshake (certificate problems named), the protocol the port actually speaks
(an HTTP/2 gRPC port and an HTTP/1.1 OTLP/HTTP port answer a request line differently), then a
test span through the real exporter, acknowledged or not. The first step that fails ends the
run: what follows could only fail for the same reason, slower. Every step is bounded by a
timeout, so a black-holed endpoint costs seconds, not the OTLP export timeout times retries.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk._record import Record

if TYPE_CHECKING:
    from telemetry_run._otlp import OTLPSettings
    from telemetry_run.sdk.exporters import SpanExporter

__all__ = ["Step", "Target", "check_endpoint", "target_of"]

#: A request line any HTTP/1.1 server answers with a status line; an HTTP/2-only (gRPC) server
#: answers with its SETTINGS frame, a TLS server with an alert or by closing.
_REQUEST: Final = b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
_HTTP2_SETTINGS: Final = 0x04


class Step(Record):
    """One check: ``ok`` True, False, or None when it was skipped (an earlier step failed)."""

    __match_args__ = ("name", "ok", "detail")
    __slots__ = __match_args__

    name: str
    ok: bool | None
    detail: str

    def __init__(self, name: str, ok: bool | None, detail: str) -> None:
        self.name = name
        self.ok = ok
        self.detail = detail

    def as_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


class Target(Record):
    """Where the exporter connects: host, port, TLS or not, and the protocol it will speak."""

    __match_args__ = ("host", "port", "tls", "protocol", "endpoint")
    __slots__ = __match_args__

    host: str
    port: int
    tls: bool
    protocol: str
    endpoint: str

    def __init__(self, host: str, port: int, tls: bool, protocol: str, endpoint: str) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.protocol = protocol
        self.endpoint = endpoint


def target_of(settings: OTLPSettings) -> Target:
    """The host and port the exporter for ``settings`` connects to, by its own rules."""
    from telemetry_run.sdk.exporters.otlp._common import safe_endpoint

    shown = safe_endpoint(settings.endpoint)
    if settings.protocol == "grpc":
        from telemetry_run.sdk.exporters.otlp.grpc import parse_target

        authority, tls = parse_target(settings.endpoint, settings.insecure)
        host, _, port = authority.rpartition(":")
        return Target(host.strip("[]"), int(port), tls, "grpc", shown)
    import urllib.parse

    parts = urllib.parse.urlsplit(settings.endpoint)
    tls = parts.scheme.lower() == "https"
    return Target(
        parts.hostname or "", parts.port or (443 if tls else 80), tls, settings.protocol, shown
    )


def _bounded(fn: Callable[[], Any], timeout: float) -> Any:
    """``fn()`` in a daemon thread, waited for ``timeout`` seconds (``getaddrinfo`` has no
    timeout of its own); raises TimeoutError when it has not returned by then."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001  # handed to the caller's thread
            box.append((False, exc))

    thread = threading.Thread(target=run, name="telemetry-run-doctor", daemon=True)
    thread.start()
    thread.join(timeout)
    if not box:
        raise TimeoutError(f"no answer in {timeout:g} s")
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _tls_context(settings: OTLPSettings, target: Target) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.certificate_file)
    if settings.client_certificate_file and settings.client_key_file:
        context.load_cert_chain(settings.client_certificate_file, settings.client_key_file)
    context.set_alpn_protocols(["h2"] if target.protocol == "grpc" else ["http/1.1"])
    return context


def _certificate_problem(exc: ssl.SSLError) -> str:
    """What is wrong with the server's certificate, or with TLS on this port, in words."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = str(exc.verify_message or exc)
        lowered = message.lower()
        if "hostname mismatch" in lowered or "ip address mismatch" in lowered:
            return (
                f"the server's certificate is for another host ({message}): connect with a "
                "name the certificate lists, or have the collector use a certificate for it"
            )
        if "expired" in lowered:
            return f"the server's certificate has expired ({message})"
        if "not yet valid" in lowered:
            return f"the server's certificate is not valid yet ({message})"
        return (
            f"the server's certificate is not trusted ({message}): set "
            "OTEL_EXPORTER_OTLP_CERTIFICATE to the CA that signed it"
        )
    upper = f"{exc.reason or ''} {exc}".upper()
    if "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER" in upper or "PACKET_LENGTH" in upper:
        return (
            "the endpoint does not speak TLS (it answered in plaintext): use an http:// "
            "endpoint, or turn TLS on in the collector"
        )
    if "CERTIFICATE_REQUIRED" in upper or "HANDSHAKE_FAILURE" in upper:
        return (
            "the receiver requires a client certificate (mTLS): set "
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY"
        )
    return f"the TLS handshake failed ({_describe(exc)})"


def _spoken(answer: bytes) -> str:
    """Which protocol an answer to an HTTP/1.1 request line is in."""
    if answer.startswith(b"HTTP/1."):
        return "http/1.1"
    if len(answer) >= 9 and answer[3] == _HTTP2_SETTINGS:
        return "http/2"
    if answer[:2] == b"\x15\x03":
        return "tls"
    if not answer:
        return "closed"
    return "unknown"


def wrong_protocol_message(endpoint: str, *, spoken: str, expected: str) -> str:
    """The exporter's own diagnostic for the other transport's port, without its
    ``OTLP export to ... failed:`` opening (nothing was exported)."""
    from telemetry_run.sdk.exporters.otlp import _common

    message = _common.wrong_protocol_message(endpoint, spoken=spoken, expected=expected)
    return f"{endpoint} " + message.split(" failed: ", 1)[-1]


def _protocol_step(target: Target, spoken: str, alpn: str | None) -> Step:
    wanted = "grpc" if target.protocol == "grpc" else "http"
    if spoken == "http/2" or alpn == "h2":
        if wanted == "grpc":
            return Step("protocol", True, "HTTP/2, as OTLP/gRPC needs")
        return Step(
            "protocol",
            False,
            wrong_protocol_message(
                target.endpoint, spoken="HTTP/2 (it looks like an OTLP/gRPC port)", expected=wanted
            ),
        )
    if spoken == "http/1.1":
        if wanted == "http":
            return Step("protocol", True, "HTTP/1.1, as OTLP/HTTP needs")
        return Step(
            "protocol",
            False,
            wrong_protocol_message(
                target.endpoint,
                spoken="HTTP/1.1 only (it looks like an OTLP/HTTP port)",
                expected=wanted,
            ),
        )
    if spoken in ("tls", "closed") and not target.tls:
        return Step(
            "protocol",
            False,
            "the endpoint closed a plaintext connection without answering"
            + (" (with a TLS alert)" if spoken == "tls" else "")
            + ": it probably expects TLS; use an https:// endpoint",
        )
    return Step(
        "protocol", False, f"the endpoint's answer is neither HTTP/1.1 nor HTTP/2 ({spoken})"
    )


def check_endpoint(
    settings: OTLPSettings,
    make_exporter: Callable[[], SpanExporter],
    make_span: Callable[[], Any],
    *,
    timeout: float = 5.0,
) -> list[Step]:
    """Every step for the endpoint ``settings`` name; skipped steps are listed too."""
    names = ["dns", "tcp", "tls", "protocol", "test span"]
    steps: list[Step] = []

    def finish() -> list[Step]:
        done = {s.name for s in steps}
        why = "skipped: an earlier check failed"
        return steps + [Step(n, None, why) for n in names if n not in done]

    try:
        target = target_of(settings)
    except ValueError as exc:
        steps.append(Step("dns", False, f"the endpoint cannot be used: {exc}"))
        return finish()
    step, addresses = _resolve(target, timeout)
    steps.append(step)
    if not step.ok:
        return finish()
    step, sock = _connect(target, addresses, timeout)
    steps.append(step)
    if sock is None:
        return finish()
    try:
        alpn = None
        if target.tls:
            step, sock, alpn = _handshake(sock, settings, target)
            steps.append(step)
            if not step.ok:
                return finish()
        else:
            steps.append(Step("tls", None, "plaintext endpoint: no TLS"))
        answer = _probe(sock, target, timeout)
    finally:
        sock.close()
    protocol = _protocol_step(target, _spoken(answer), alpn)
    steps.append(protocol)
    if not protocol.ok:
        return finish()
    steps.append(_test_span(make_exporter, make_span, settings.timeout or timeout))
    return finish()


def _resolve(target: Target, timeout: float) -> tuple[Step, list[Any]]:
    try:
        addresses = _bounded(
            lambda: socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM),
            timeout,
        )
    except (OSError, TimeoutError) as exc:
        return Step("dns", False, f"{target.host!r} does not resolve ({_describe(exc)})"), []
    shown = sorted({str(a[4][0]) for a in addresses})
    return Step("dns", True, f"{target.host} is {', '.join(shown)}"), addresses


def _connect(
    target: Target, addresses: list[Any], timeout: float
) -> tuple[Step, socket.socket | None]:
    errors = []
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            errors.append(f"{address[0]}: {_describe(exc)}")
            continue
        return Step("tcp", True, f"connected to {target.host}:{target.port}"), sock
    refused = all("ConnectionRefused" in e for e in errors)
    why = f"nothing listens on port {target.port}" if refused else "no connection"
    return Step("tcp", False, f"{why} ({'; '.join(errors)})"), None


def _handshake(
    sock: socket.socket, settings: OTLPSettings, target: Target
) -> tuple[Step, socket.socket, str | None]:
    """The TLS handshake on ``sock``; the socket to use next (wrapped when it succeeded)."""
    try:
        context = _tls_context(settings, target)
    except (OSError, ssl.SSLError) as exc:
        return Step("tls", False, f"cannot load the TLS files ({_describe(exc)})"), sock, None
    try:
        wrapped = context.wrap_socket(sock, server_hostname=target.host)
    except ssl.SSLError as exc:
        return Step("tls", False, _certificate_problem(exc)), sock, None
    except OSError as exc:
        return Step("tls", False, f"the TLS handshake failed ({_describe(exc)})"), sock, None
    verified = f"{wrapped.version()}, the certificate is valid for {target.host}"
    return Step("tls", True, verified), wrapped, wrapped.selected_alpn_protocol()


def _probe(sock: socket.socket, target: Target, timeout: float) -> bytes:
    """The first bytes the endpoint answers an HTTP/1.1 request line with."""
    answer = b""
    try:
        sock.sendall(_REQUEST % target.host.encode("ascii", "replace"))
        deadline = time.monotonic() + timeout
        while len(answer) < 16 and time.monotonic() < deadline:
            chunk = sock.recv(64)
            if not chunk:
                break
            answer += chunk
    except (OSError, ValueError):  # reset, timed out, a TLS alert raised by ssl, a bad name
        pass
    return answer


def _test_span(
    make_exporter: Callable[[], SpanExporter], make_span: Callable[[], Any], timeout: float
) -> Step:
    exporter = make_exporter()
    start = time.monotonic()
    deadline = start + min(timeout, 10.0)
    try:
        result = exporter.export([make_span()], deadline=deadline)
    finally:
        exporter.shutdown(deadline=time.monotonic() + 1.0)
    took = (time.monotonic() - start) * 1000
    if result.success and not result.rejected:
        return Step("test span", True, f"sent and acknowledged in {took:.0f} ms")
    if result.rejected:
        return Step("test span", False, f"the receiver rejected it ({result.error or 'no reason'})")
    return Step("test span", False, f"not acknowledged: {result.error or 'no reason given'}")
