"""The RPC (gRPC) semantic conventions, computed in one place for the gRPC client and server.

The gRPC instrumentor asks this module for span names, attributes and statuses and writes no
attribute name of its own. It imports nothing from grpc: status codes arrive as ints or as
``grpc.StatusCode`` members (whose value is ``(int, name)``), so everything here is plain data.

Which names: the RPC conventions are not stable (REFERENCE 4.5). The v1.44 release candidate
renamed ``rpc.system`` to ``rpc.system.name``, folded ``rpc.service`` into a fully qualified
``rpc.method`` and replaced the integer ``rpc.grpc.status_code`` with a string
``rpc.status_code``. We emit the widely used pre-release set (``rpc.system="grpc"``,
``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code`` as an int), because that is what the
OpenTelemetry Python gRPC instrumentation, dashboards and backends key on today; the RC names
would come behind ``OTEL_SEMCONV_STABILITY_OPT_IN`` once they are stable. The span name already
follows the RC form ``package.Service/Method`` (no leading slash), as every version allows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

from telemetry_run.instrumentors._http import exception_type

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.api import Span

__all__ = [
    "CODE_NAMES",
    "OK",
    "SERVER_ERROR_CODES",
    "SYSTEM",
    "client_attributes",
    "client_end",
    "client_exception",
    "code_value",
    "is_error",
    "method_attributes",
    "parse_peer",
    "parse_target",
    "server_attributes",
    "server_end",
    "server_exception",
    "span_name",
    "split_method",
]

SYSTEM: Final = "grpc"

OK: Final = 0
CANCELLED: Final = 1
UNKNOWN: Final = 2
DEADLINE_EXCEEDED: Final = 4

#: The gRPC status codes by number, as ``error.type`` reports them.
CODE_NAMES: Final = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}

#: The codes that are the server's fault: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
#: UNAVAILABLE, DATA_LOSS. The others (NOT_FOUND, INVALID_ARGUMENT...) answer a bad request,
#: as an HTTP 4xx does, and leave a SERVER span's status unset.
SERVER_ERROR_CODES: Final = frozenset({2, 4, 12, 13, 14, 15})

_MAX_PORT: Final = 65535


def code_value(code: object) -> int | None:
    """The number of a status code given as an int or a ``grpc.StatusCode``; None if neither."""
    if isinstance(code, int):  # an IntEnum (aio's cygrpc codes) is an int too
        return int(code)
    value = getattr(code, "value", None)
    if isinstance(value, tuple) and value and isinstance(value[0], int):
        return int(value[0])  # grpc.StatusCode.NOT_FOUND.value == (5, "not found")
    return None


def is_error(code: int, *, server: bool) -> bool:
    """The status rule: a client fails on every code but OK, a server only on its own faults."""
    if server:
        return code in SERVER_ERROR_CODES
    return code != OK


def split_method(method: str | bytes) -> tuple[str, str] | None:
    """``/package.Service/Method`` as ``("package.Service", "Method")``; None if malformed."""
    if isinstance(method, bytes | bytearray):
        method = method.decode("utf-8", "replace")
    service, sep, name = method.removeprefix("/").partition("/")
    if not (service and sep and name) or "/" in name:
        return None
    return service, name


def span_name(method: str | bytes) -> str:
    """``package.Service/Method``; a malformed method as it is, and ``grpc`` if empty."""
    parts = split_method(method)
    if parts is not None:
        return f"{parts[0]}/{parts[1]}"
    if isinstance(method, bytes | bytearray):
        method = method.decode("utf-8", "replace")
    return method.removeprefix("/") or SYSTEM


def method_attributes(method: str | bytes) -> dict[str, Any]:
    """``rpc.system`` always; ``rpc.service`` and ``rpc.method`` when the method parses."""
    attributes: dict[str, Any] = {"rpc.system": SYSTEM}
    parts = split_method(method)
    if parts is not None:
        attributes["rpc.service"], attributes["rpc.method"] = parts
    return attributes


def _host_port(text: str) -> tuple[str, int | None] | None:
    """``host``, ``host:port`` or ``[v6]:port`` as (host, port); None when it is not one."""
    if not text or any(c.isspace() or c in "/?#@" for c in text):
        return None
    if text.startswith("["):
        end = text.find("]")
        if end <= 1:
            return None
        rest = text[end + 1 :]
        if not rest:
            return text[1:end], None
        if rest[0] != ":" or not rest[1:].isdigit() or int(rest[1:]) > _MAX_PORT:
            return None
        return text[1:end], int(rest[1:])
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, None
    if ":" in host:  # a bare IPv6 address: no port can be told apart
        return text, None
    if not host or not port.isdigit() or int(port) > _MAX_PORT:
        return None
    return host, int(port)


def parse_target(target: object) -> tuple[str, int | None]:
    """``server.address`` and ``server.port`` from a channel target string (REFERENCE 4.5).

    ``host:port`` and ``dns:///host:port`` (or ``dns://resolver/host:port``, or any other
    ``scheme://authority/host:port``) give the host and port; ``ipv4:``/``ipv6:`` the first
    address of the list; ``unix:`` paths the path and no port. Anything that does not parse is
    used whole, with no port: the target is what the application named, never the peer gRPC
    resolved it to.
    """
    if isinstance(target, bytes | bytearray):
        target = target.decode("utf-8", "replace")
    whole = str(target).strip()
    text = whole
    scheme, sep, rest = whole.partition(":")
    scheme = scheme.lower()
    if sep and scheme in ("unix", "unix-abstract"):
        path = rest.removeprefix("//") if scheme == "unix" else rest
        return (path or whole), None
    if sep and rest.startswith("//"):  # scheme://authority/endpoint: the endpoint names it
        authority_and_path = rest[2:]
        _, slash, endpoint = authority_and_path.partition("/")
        text = endpoint if slash else authority_and_path
    elif sep and scheme in ("dns", "ipv4", "ipv6"):
        text = rest.split(",", 1)[0] if scheme != "dns" else rest
    parsed = _host_port(text)
    if parsed is None:
        return whole, None
    return parsed


def parse_peer(peer: object) -> tuple[str, int | None] | None:
    """``network.peer.*`` from ``ServicerContext.peer()``: ``ipv4:127.0.0.1:5000``,
    ``ipv6:[::1]:5000`` (grpc percent-encodes the brackets), ``unix:/path``; None if unknown."""
    if not isinstance(peer, str) or not peer:
        return None
    scheme, sep, rest = peer.partition(":")
    if not sep:
        return None
    rest = unquote(rest)
    if scheme in ("unix", "unix-abstract"):
        return (rest, None) if rest else None
    if scheme not in ("ipv4", "ipv6"):
        return None
    parsed = _host_port(rest)
    if parsed is None or not parsed[0]:
        return None
    return parsed


def client_attributes(method: str | bytes, address: str, port: int | None) -> dict[str, Any]:
    """A CLIENT span's attributes at start: the method's, ``server.address``/``server.port``."""
    attributes = method_attributes(method)
    if address:
        attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
    return attributes


def server_attributes(method: str | bytes, peer: object) -> dict[str, Any]:
    """A SERVER span's attributes at start: the method's, ``network.peer.*`` when known."""
    attributes = method_attributes(method)
    parsed = parse_peer(peer)
    if parsed is not None:
        attributes["network.peer.address"] = parsed[0]
        if parsed[1] is not None:
            attributes["network.peer.port"] = parsed[1]
    return attributes


def _end(span: Span, code: int, details: str | None, *, server: bool) -> None:
    from telemetry_run.sdk.trace.api import StatusCode

    span.set_attribute("rpc.grpc.status_code", code)
    if is_error(code, server=server):
        # error.type only with an ERROR status, as for HTTP: a server's NOT_FOUND is no failure.
        span.set_attribute("error.type", CODE_NAMES.get(code, str(code)))
        span.set_status(StatusCode.ERROR, details or None)


def client_end(span: Span, code: object, details: str | None = None) -> None:
    """A CLIENT call's final status: every code but OK is ERROR (``details`` describes it)."""
    value = code_value(code)
    _end(span, UNKNOWN if value is None else value, details, server=False)


def server_end(span: Span, code: object, details: str | None = None) -> None:
    """A SERVER call's final status: only ``SERVER_ERROR_CODES`` are ERROR."""
    value = code_value(code)
    _end(span, OK if value is None else value, details, server=True)


def client_exception(span: Span, exc: BaseException, code: object = None) -> None:
    """A client call that failed without a status from the server: the exception's class as
    ``error.type``, and ``rpc.grpc.status_code`` only if grpc gave the caller one (``code``)."""
    from telemetry_run.sdk.trace.api import StatusCode

    span.record_exception(exc, escaped=True)
    value = code_value(code)
    if value is not None:
        span.set_attribute("rpc.grpc.status_code", value)
    span.set_attribute("error.type", exception_type(exc))
    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")


def server_exception(span: Span, exc: BaseException) -> None:
    """A handler raised: gRPC answers UNKNOWN; the exception is recorded as escaping."""
    span.record_exception(exc, escaped=True)
    _end(span, UNKNOWN, f"{type(exc).__name__}: {exc}", server=True)
