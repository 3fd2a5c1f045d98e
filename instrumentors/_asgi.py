"""One SERVER span per ASGI HTTP request or websocket connection, whichever layer sees it first.

``traced_app(site, app)`` wraps an ASGI application: the server-level instrumentor (``asgi``,
wrapping what uvicorn loads) and the framework's (``starlette``, around ``Starlette.__call__``)
both use it, and whichever runs first starts the span and keeps it in
``scope[SCOPE_KEY]``; the other sees it there and starts none, so a FastAPI app under uvicorn
has exactly one SERVER span, and so has the same app under any other server or in a test client.

The span starts from the ``scope`` (the request attributes samplers need, the caller's context
read from the headers by the configured propagators), learns the status from the
``http.response.start`` message and ends when the last ``http.response.body`` message (no
``more_body``) has been sent, so a streamed response is timed to its last byte, and background
tasks run after it are not counted (a 5xx ends when the application returns, with the exception
that caused it). A websocket connection's span starts with the handshake,
has status 101 once accepted and ends when the application returns. An exception escaping the
application is recorded (a cancellation, the client going away, is not an error). FastAPI's own
telemetry (its OpenTelemetry API spans, which our API bridge would make ours) is told to stand
aside for a request we trace, with its own marker, ``scope["fastapi.telemetry"] = None``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors.base import _report, guard
from telemetry_run.instrumentors.toolkit import HTTP_SERVER, Call, CallSite, server_call
from telemetry_run.sdk.propagation import HeaderListGetter

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.api import Tracer

__all__ = ["SCOPE_KEY", "AsgiRequest", "scope_attributes", "serve", "server_site", "traced_app"]

#: Where the connection's ``AsgiRequest`` is kept in the scope (the other layers look there).
SCOPE_KEY: Final = "telemetry_run.server_request"
#: FastAPI's per-request telemetry key; None there means "FastAPI makes no span of its own".
FASTAPI_TELEMETRY_KEY: Final = "fastapi.telemetry"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_TRACED_TYPES: Final = frozenset({"http", "websocket"})
#: In ``scope[SCOPE_KEY]`` when the first layer decided not to trace the request.
_UNTRACED: Final = "untraced"
#: Websocket close codes of a normal end (RFC 6455 section 7.4.1): going away is not an error.
_NORMAL_CLOSE: Final = frozenset({1000, 1001})


class _ScopeHeadersGetter:
    """The propagators' getter for ``scope["headers"]``: ASGI gives lower-case byte names, so
    a key is looked up with one bytes comparison per header (five times faster than the
    general ``HeaderListGetter``, which folds the case of each name it meets)."""

    __slots__ = ()

    def get(self, carrier: Iterable[tuple[bytes, bytes]], key: str) -> list[str] | None:
        try:
            wanted = key.lower().encode("latin-1")
            values = [value.decode("latin-1") for name, value in carrier if name == wanted]
        except Exception:  # noqa: BLE001  # a foreign carrier must not break the request
            return _fallback.get(carrier, key)
        return values or None

    def keys(self, carrier: Iterable[tuple[bytes, bytes]]) -> list[str]:
        return _fallback.keys(carrier)


_fallback: Final = HeaderListGetter()
_getter: Final = _ScopeHeadersGetter()
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_READ_HEADERS: Final = frozenset({b"host", b"user-agent", b"x-forwarded-host", b"x-forwarded-for"})


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _path(scope: Mapping[str, Any]) -> str:
    """``url.path`` as the client sent it: ``raw_path`` when the server gives it."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1")
    path = scope.get("path")
    if not isinstance(path, str) or not path:
        return "/"
    if path.isascii() and " " not in path:
        return path
    from urllib.parse import quote  # rare: only for paths that are not plain ASCII

    return quote(path, safe="/:@!$&'()*+,;=-._~%")


def _read_headers(scope: Mapping[str, Any]) -> tuple[bytes | None, bytes | None, bytes | None]:
    """The host (``X-Forwarded-Host`` first), ``X-Forwarded-For`` and ``User-Agent``, in one
    pass over the headers (the first of each)."""
    host = forwarded_host = forwarded = agent = None
    for name, value in scope.get("headers") or ():
        if name in _READ_HEADERS:
            if name == b"host":
                host = host or value
            elif name == b"user-agent":
                agent = agent or value
            elif name == b"x-forwarded-host":
                forwarded_host = forwarded_host or value
            else:
                forwarded = forwarded or value
    return forwarded_host or host, forwarded, agent


def scope_attributes(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The request attributes of a SERVER span, from an ASGI ``http`` or ``websocket`` scope.

    A websocket connection is reported as its handshake (a GET over ``ws``/``wss``).
    """
    method = scope.get("method")
    method, original = _http.method_and_original(
        method if isinstance(method, str) and method else "GET"
    )
    scheme = scope.get("scheme")
    if not isinstance(scheme, str) or not scheme:
        scheme = "ws" if scope.get("type") == "websocket" else "http"
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.scheme": scheme,
        "url.path": _path(scope),
    }
    if original is not None:
        attributes["http.request.method_original"] = original
    query = scope.get("query_string")
    if query and isinstance(query, bytes):
        attributes["url.query"] = _http.redact_query(query.decode("latin-1"))
    host, forwarded, agent = _read_headers(scope)
    server = scope.get("server")
    if host:
        authority = host.decode("latin-1").split(",", 1)[0].strip()
        address, port = _http._split_host(authority, _DEFAULT_PORTS.get(scheme))
    elif isinstance(server, list | tuple) and len(server) == 2:
        address, port = str(server[0]), server[1] if isinstance(server[1], int) else None
    else:
        address, port = "", None
    if address:
        attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
    client = scope.get("client")
    peer, peer_port = "", None
    if isinstance(client, list | tuple) and len(client) == 2 and isinstance(client[0], str):
        peer, peer_port = client[0], client[1] if isinstance(client[1], int) else None
    client_address = forwarded.decode("latin-1").split(",", 1)[0].strip() if forwarded else peer
    if client_address:
        attributes["client.address"] = client_address
    if peer:
        attributes["network.peer.address"] = peer
        if peer_port is not None:
            attributes["network.peer.port"] = peer_port
    if agent:
        attributes["user_agent.original"] = agent.decode("latin-1")
    version = scope.get("http_version")
    if isinstance(version, str) and version:
        attributes["network.protocol.version"] = version
    return attributes


def _span_name(attributes: Mapping[str, Any], scope: Mapping[str, Any]) -> str:
    return _http.server_span_name(attributes["http.request.method"], None)


def _headers(scope: Mapping[str, Any]) -> Any:
    return scope.get("headers") or ()


def _request_headers(scope: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope.get("headers") or ()
    ]


def _url(scope: Mapping[str, Any]) -> str:
    """The request's URL rebuilt from the scope, for the excluded-URL patterns."""
    scheme = scope.get("scheme") or "http"
    host = _header(scope.get("headers") or (), b"host") or ""
    query = scope.get("query_string") or b""
    url = f"{scheme}://{host}{scope.get('path') or '/'}"
    return f"{url}?{query.decode('latin-1')}" if query else url


def server_site(
    tracer: Tracer, name: str, settings: _http.HttpSettings, enabled: Callable[[], bool]
) -> CallSite:
    """The site of an ASGI layer's connections: ``site.start(scope)`` is an ``AsgiRequest``."""
    excluded = None
    if settings.excludes():

        def excluded(scope: Mapping[str, Any]) -> bool:
            return settings.is_excluded(_url(scope))

    return server_call(
        tracer,
        name,
        attributes=scope_attributes,
        span_name=_span_name,
        carrier=_headers,
        getter=_getter,
        rules=HTTP_SERVER,
        settings=settings,
        excluded=excluded,
        request_headers=_request_headers,
        enabled=enabled,
        call_type=AsgiRequest,
        noun="request",
        metric="http.server.request.duration",
    )


class AsgiRequest(Call):
    """The SERVER span of one ASGI connection, with what a framework tells it."""

    __slots__ = ("route_of",)

    #: Set by a framework's layer: the matched route template, asked when the response starts.
    route_of: Callable[[], str | None] | None

    def set_route(self, route: str | None) -> None:
        """The matched route template: ``http.route`` and the span name ``GET /items/{id}``."""
        if route:
            self.route = route
            span = self.span
            span.set_attribute("http.route", route)
            span.update_name(_http.server_span_name(self.attributes["http.request.method"], route))

    def learn_route(self) -> None:
        """Ask the framework for the route once (it knows it after routing)."""
        route_of, self.route_of = self.route_of, None
        if route_of is not None:
            self.set_route(route_of())

    def note(self, message: Mapping[str, Any]) -> None:
        """A message the application sends: the status, the end of the body."""
        kind = message.get("type")
        if kind == "http.response.start":
            self.learn_route()
            self.set_status_code(int(message["status"]))
            settings = self.site.settings
            if settings is not None and settings.response_headers is not None:
                self.capture_response_headers(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in message.get("headers") or ()
                )
        elif kind == "websocket.accept":
            self.learn_route()
            self.set_status_code(101)
        elif kind == "websocket.close" and self.status_code is None:
            self.learn_route()
            self.set_status_code(403)  # closed before the handshake: the server answers 403

    def sent(self, message: Mapping[str, Any]) -> None:
        """A message was sent: the last body message ends the span.

        Not after a 5xx: the exception that caused it (Starlette's error middleware sends the
        500 and then raises it) escapes the application next, and is recorded then.
        """
        if message.get("type") == "http.response.body" and not message.get("more_body", False):
            code = self.status_code
            if not (isinstance(code, int) and code >= 500):
                self.end()


def _normal_disconnect(exc: BaseException) -> bool:
    """Starlette's ``WebSocketDisconnect`` for a normal close (the peer left): no error."""
    return type(exc).__name__ == "WebSocketDisconnect" and getattr(exc, "code", None) in (
        _NORMAL_CLOSE
    )


def traced_app(site: CallSite, app: App, where: str) -> App:
    """``app`` with one SERVER span per HTTP request and websocket connection."""

    async def traced(scope: Scope, receive: Receive, send: Send) -> None:
        await serve(site, app, scope, receive, send, where)

    return traced


async def serve(
    site: CallSite,
    app: App,
    scope: Scope,
    receive: Receive,
    send: Send,
    where: str,
    route_of: Callable[[], str | None] | None = None,
) -> None:
    """Run ``app`` for one connection inside its SERVER span (``route_of``: the framework's
    route, asked after routing).

    Another layer's span in the scope (``SCOPE_KEY``) means this one adds none: it only hands
    that span ``route_of``.
    """
    request: AsgiRequest | None = None
    if scope.get("type") in _TRACED_TYPES:
        with guard(f"{where}: request start"):
            outer = scope.get(SCOPE_KEY)
            if isinstance(outer, AsgiRequest):
                if route_of is not None:
                    outer.route_of = route_of
            elif outer is None:
                started = site.start(scope)
                if isinstance(started, AsgiRequest):
                    started.route_of = route_of
                    scope[SCOPE_KEY] = request = started
                else:  # excluded, or the gate is off: no other layer traces it either
                    scope[SCOPE_KEY] = _UNTRACED
                # FastAPI's own telemetry (through the OpenTelemetry API, which our bridge
                # makes ours) would be a second SERVER span, or a span for an excluded URL:
                # its documented per-request marker for "observed elsewhere" keeps it out.
                scope.setdefault(FASTAPI_TELEMETRY_KEY, None)
    if request is None:
        await app(scope, receive, send)
        return
    traced_request = request

    async def noted_send(message: Message) -> None:
        try:  # not ``guard``: this runs for every message, and a try costs nothing
            traced_request.note(message)
        except Exception as exc:  # noqa: BLE001  # reported; the response goes on
            _report(f"{where}: response", exc)
        await send(message)
        try:
            traced_request.sent(message)
        except Exception as exc:  # noqa: BLE001  # reported; the response goes on
            _report(f"{where}: response sent", exc)

    try:
        await app(scope, receive, noted_send)
    except BaseException as exc:
        with guard(f"{where}: request failed"):
            request.learn_route()
            if _normal_disconnect(exc):
                request.end()
                request.detach()
            else:
                request.fail(exc)
        raise
    with guard(f"{where}: request end"):
        request.learn_route()
        request.end()  # a websocket closed, or a response left unfinished
    request.detach()
