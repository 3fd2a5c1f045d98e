"""The stable HTTP semantic conventions, computed in one place for every HTTP instrumentor.

Server instrumentors (Flask, Django, through ``_wsgi``) and client instrumentors (requests)
ask this module for span names, attributes, statuses and what to capture or redact; none of
them writes an attribute name of its own. Only the stable names are emitted
(``http.request.method``, ``http.response.status_code``, ``url.*``), never the old ones.

``HttpSettings`` is built once per instrumentor from the configuration: the excluded-URL
pattern and the header allow-lists. Everything here runs per request, so the common case (no
capture configured, an ASCII path, no sensitive query key) takes the shortest path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from telemetry_run._env import InvalidValue, parse_list
from telemetry_run.sdk._native import speedups
from telemetry_run.sdk._record import FrozenRecord

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import Span

__all__ = [
    "CAPTURE_CLIENT_REQUEST",
    "CAPTURE_CLIENT_RESPONSE",
    "CAPTURE_SENSITIVE",
    "CAPTURE_SERVER_REQUEST",
    "CAPTURE_SERVER_RESPONSE",
    "CLIENT_SPAN_KEY",
    "DEFAULT_PORTS",
    "EXCLUDED_URLS",
    "KNOWN_METHODS",
    "REDACTED",
    "SANITIZE_FIELDS",
    "SENSITIVE_HEADERS",
    "SENSITIVE_QUERY_KEYS_VARIABLE",
    "HttpSettings",
    "client_exception",
    "client_request_attributes",
    "client_response",
    "client_span_name",
    "client_status",
    "environ_headers",
    "environ_url",
    "exception_type",
    "excluded_urls_variable",
    "method_and_original",
    "parse_url_patterns",
    "protocol_version",
    "redact_query",
    "redact_url",
    "server_environ_attributes",
    "server_span_name",
    "server_status_attributes",
]

#: The methods the conventions name; anything else is reported as ``_OTHER``.
KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)

REDACTED: Final = "REDACTED"  # as telemetry_run.sdk._redaction writes it

#: Header names whose captured values are always ``[REDACTED]`` unless CAPTURE_SENSITIVE is true.
SENSITIVE_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)

#: Context key set while an HTTP client instrumentor's CLIENT span is current: a lower layer
#: (a urllib3 instrumentor under requests, a redirect hop) sees it and adds no span of its own.
CLIENT_SPAN_KEY: Final = "telemetry_run.http_client_span"

EXCLUDED_URLS: Final = "OTEL_PYTHON_EXCLUDED_URLS"
CAPTURE_SERVER_REQUEST: Final = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
CAPTURE_SERVER_RESPONSE: Final = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
CAPTURE_CLIENT_REQUEST: Final = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST"
CAPTURE_CLIENT_RESPONSE: Final = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE"
SANITIZE_FIELDS: Final = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
CAPTURE_SENSITIVE: Final = "TELEMETRY_RUN_HTTP_CAPTURE_SENSITIVE_HEADERS"
SENSITIVE_QUERY_KEYS_VARIABLE: Final = "TELEMETRY_RUN_HTTP_SENSITIVE_QUERY_KEYS"

# Characters that stand in a path as they are (RFC 3986 pchar and "/"); others are
# percent-encoded, as the client must have sent them.
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~%"
_PLAIN_PATH: re.Pattern[str] | None = None  # compiled by the first request, not at import
#: The port a URL without one means, per scheme.
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_DEFAULT_PORTS: Final = DEFAULT_PORTS
# ``network.protocol.version`` of the protocols servers name, without a call per request.
_PROTOCOL_VERSIONS: Final = {"HTTP/1.1": "1.1", "HTTP/1.0": "1.0", "HTTP/2.0": "2", "HTTP/2": "2"}
# Host headers already split into (address, port or None): a server is reached under a few
# names. Bounded (the header is the client's) and emptied when full, like the tracestate cache.
_HOSTS_SIZE: Final = 256
_HOST_LENGTH: Final = 270  # a DNS name (253) and a port: the cache holds at most ~70 KB
_split_hosts: dict[str, tuple[str, int | None]] = {}


def _compile_plain_path() -> re.Pattern[str]:
    global _PLAIN_PATH
    _PLAIN_PATH = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=\-._~%]*")
    return _PLAIN_PATH


def excluded_urls_variable(framework: str) -> str:
    """``OTEL_PYTHON_FLASK_EXCLUDED_URLS`` for ``"flask"``: wins over the general variable."""
    return f"OTEL_PYTHON_{framework.upper()}_EXCLUDED_URLS"


def parse_url_patterns(raw: str) -> tuple[str, ...]:
    """A comma-separated list of regular expressions, each checked to compile."""
    patterns = parse_list(raw)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidValue(f"has a pattern that is not a regular expression: {exc}") from None
    return patterns


def _names_query(pattern: str) -> bool:
    """True for a pattern that matches a literal ``?``: written ``\\?`` (or ``[?]``)."""
    return "\\?" in pattern or "[?]" in pattern


def _any_of(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern that searches for any of ``patterns``; None for none."""
    joined = "|".join(f"(?:{p})" for p in patterns)
    return re.compile(joined) if joined else None


def _header_patterns(names: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive full-match pattern for an allow-list of names or regexes."""
    names = [name for name in names if name]
    if not names:
        return None
    return re.compile("|".join(f"(?:{name})" for name in names), re.IGNORECASE)


class HttpSettings(FrozenRecord):
    """What one instrumentor captures and skips, read once from the configuration."""

    __match_args__ = (
        "excluded",
        "request_headers",
        "response_headers",
        "sanitize",
        "sensitive",
        "excluded_with_query",
    )
    __slots__ = __match_args__

    excluded: re.Pattern[str] | None
    excluded_with_query: re.Pattern[str] | None
    request_headers: re.Pattern[str] | None
    response_headers: re.Pattern[str] | None
    sanitize: re.Pattern[str] | None
    sensitive: frozenset[str]

    def __init__(
        self,
        excluded: re.Pattern[str] | None = None,
        request_headers: re.Pattern[str] | None = None,
        response_headers: re.Pattern[str] | None = None,
        sanitize: re.Pattern[str] | None = None,
        sensitive: frozenset[str] = SENSITIVE_HEADERS,
        excluded_with_query: re.Pattern[str] | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "excluded", excluded)
        setattr_(self, "request_headers", request_headers)
        setattr_(self, "response_headers", response_headers)
        setattr_(self, "sanitize", sanitize)
        setattr_(self, "sensitive", sensitive)
        setattr_(self, "excluded_with_query", excluded_with_query)

    @classmethod
    def from_config(cls, config: Config | None, framework: str, *, server: bool) -> HttpSettings:
        """Settings for ``framework``; variables missing from ``config`` mean their defaults."""

        def get(name: str) -> Any:
            return config.get(name) if config is not None else None

        patterns = get(excluded_urls_variable(framework))
        if not patterns:
            patterns = get(EXCLUDED_URLS)
        side = (CAPTURE_SERVER_REQUEST, CAPTURE_SERVER_RESPONSE)
        if not server:
            side = (CAPTURE_CLIENT_REQUEST, CAPTURE_CLIENT_RESPONSE)
        patterns = patterns or ()
        return cls(
            excluded=_any_of(p for p in patterns if not _names_query(p)),
            excluded_with_query=_any_of(p for p in patterns if _names_query(p)),
            request_headers=_header_patterns(get(side[0]) or ()),
            response_headers=_header_patterns(get(side[1]) or ()),
            sanitize=_header_patterns(get(SANITIZE_FIELDS) or ()),
            sensitive=frozenset() if get(CAPTURE_SENSITIVE) else SENSITIVE_HEADERS,
        )

    def excludes(self) -> bool:
        """True when any excluded-URL pattern is configured (the URL is worth building)."""
        return self.excluded is not None or self.excluded_with_query is not None

    def is_excluded(self, url: str) -> bool:
        """True when ``url`` matches an excluded pattern (``re.search``, as the peers do).

        Patterns are matched against the URL without its query and fragment, so a query the
        client chose (``?next=/health``) cannot switch tracing off; only a pattern that names
        the query with ``\\?`` is matched against the whole URL.
        """
        if self.excluded is not None:
            base = url.partition("?")[0].partition("#")[0]
            if self.excluded.search(base) is not None:
                return True
        return (
            self.excluded_with_query is not None
            and self.excluded_with_query.search(url) is not None
        )

    def captured(
        self, prefix: str, pattern: re.Pattern[str], headers: Iterable[tuple[str, str]]
    ) -> dict[str, list[str]]:
        """``{prefix + name: [values]}`` for the allow-listed headers, sensitive ones redacted.

        Names are lower-cased (the conventions' rule) and repeated headers keep every value.
        URLs in the others (``Referer``, ``Location``) lose their userinfo and sensitive query
        values as ``url.full`` does, unless sensitive headers are opted in.
        """
        found: dict[str, list[str]] = {}
        scrub = (_scrub_text or _load_scrubs()[2]) if self.sensitive else None
        for name, raw in headers:
            if pattern.fullmatch(name) is None:
                continue
            lowered = name.lower()
            hidden = lowered in self.sensitive or (
                self.sanitize is not None and self.sanitize.fullmatch(name) is not None
            )
            value = raw
            if hidden:
                value = "[REDACTED]"
            elif scrub is not None and isinstance(raw, str):
                value = scrub(raw)
            found.setdefault(prefix + lowered, []).append(value)
        return found


def method_and_original(method: str) -> tuple[str, str | None]:
    """The method as the conventions report it, and the original when that differs."""
    if method in KNOWN_METHODS:
        return method, None
    upper = method.upper()
    if upper in KNOWN_METHODS:
        return upper, method
    return "_OTHER", method


def server_span_name(method: str, route: str | None) -> str:
    """``GET /users/<int:user_id>``; ``GET`` without a route; ``HTTP`` for an unknown method."""
    shown = method if method in KNOWN_METHODS else "HTTP"
    return f"{shown} {route}" if route else shown


def client_span_name(method: str) -> str:
    """A CLIENT span's name: the method, or ``HTTP`` for one the conventions do not know."""
    return method if method in KNOWN_METHODS else "HTTP"


# telemetry_run.sdk._redaction's scrubs, imported by the first request (not at start-up).
_scrub_query: Callable[[str], str] | None = None
_scrub_url: Callable[[str], str] | None = None
_scrub_text: Callable[[str], str] | None = None


def _load_scrubs() -> tuple[Callable[[str], str], Callable[[str], str], Callable[[str], str]]:
    global _scrub_query, _scrub_url, _scrub_text
    from telemetry_run.sdk._redaction import scrub_query, scrub_text, scrub_url

    _scrub_query, _scrub_url, _scrub_text = scrub_query, scrub_url, scrub_text
    return scrub_query, scrub_url, scrub_text


def redact_query(query: str) -> str:
    """``url.query`` as it may be recorded: the values of sensitive keys replaced.

    The keys (``telemetry_run.sdk._redaction``: the semantic conventions' list plus what OAuth
    and cloud URLs carry) are compared case-insensitively after percent-decoding;
    SENSITIVE_QUERY_KEYS_VARIABLE adds and removes keys.
    """
    return (_scrub_query or _load_scrubs()[0])(query)


def redact_url(url: str) -> str:
    """``url.full`` as it may be recorded: userinfo and sensitive query values replaced."""
    return (_scrub_url or _load_scrubs()[1])(url)


def protocol_version(protocol: str | None) -> str | None:
    """``HTTP/1.1`` as ``1.1``, ``HTTP/2.0`` as ``2``: ``network.protocol.version``."""
    if not protocol or not protocol.upper().startswith("HTTP/"):
        return None
    version = protocol[5:]
    return version[:-2] if version.endswith(".0") and version != "1.0" else version


def _split_host(host: str, default_port: int | None) -> tuple[str, int | None]:
    """``example.com:8080`` as (``example.com``, 8080); ``[::1]:80`` as (``::1``, 80)."""
    if host.startswith("["):
        end = host.find("]")
        if end != -1:
            port_text = host[end + 2 :] if host[end + 1 : end + 2] == ":" else ""
            return host[1:end], int(port_text) if port_text.isdigit() else default_port
    name, sep, port_text = host.rpartition(":")
    if sep and port_text.isdigit() and ":" not in name:
        return name, int(port_text)
    return host, default_port


def _text(environ: Mapping[str, Any], key: str) -> str:
    """``environ[key]`` if it is a string, else ``""``: a middleware may store any object
    under a CGI name, and that object is neither read as a header nor converted."""
    value = environ.get(key)
    return value if isinstance(value, str) else ""


def _port(environ: Mapping[str, Any], key: str) -> int | None:
    """A port given as digits or as an int (Django's ASGI META has ``REMOTE_PORT`` an int)."""
    value = environ.get(key)
    if type(value) is int:
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _wsgi_path(environ: Mapping[str, Any]) -> str:
    """SCRIPT_NAME + PATH_INFO as the client sent it (WSGI decodes it as latin-1)."""
    script, path = environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", "")
    if script.__class__ is not str or path.__class__ is not str:  # a middleware's objects
        script, path = _text(environ, "SCRIPT_NAME"), _text(environ, "PATH_INFO")
    path = script + path
    if (_PLAIN_PATH or _compile_plain_path()).fullmatch(path):
        return path or "/"
    try:
        raw = path.encode("latin-1")
    except UnicodeEncodeError:  # an ASGI-built META holds str already decoded as UTF-8
        raw = path.encode("utf-8", "surrogateescape")
    from urllib.parse import quote  # rare: only for paths that are not plain ASCII

    return quote(raw, safe=_PATH_SAFE)


def _split_host_header(host: str) -> tuple[str, int | None]:
    """A ``Host`` (or ``X-Forwarded-Host``) header's first host, split; remembered."""
    split = _split_host(host.split(",", 1)[0].strip(), None)
    if len(host) <= _HOST_LENGTH:  # a longer one is not a name a server is reached under
        if len(_split_hosts) >= _HOSTS_SIZE:
            _split_hosts.clear()
        _split_hosts[host] = split
    return split


def _python_server_environ_attributes(  # noqa: PLR0915  # one frame on purpose: every request
    environ: Mapping[str, Any],
) -> dict[str, Any]:
    """The request attributes of a SERVER span, from a WSGI environ (or Django's META).

    ``http.request.method``, ``url.path``, ``url.scheme`` and ``server.address`` are among
    them, so they can be given at span start, where samplers see them. Only string values
    are read (``_text``'s rule, inlined: this runs for every request).
    """
    get = environ.get
    method = get("REQUEST_METHOD")
    original = None
    if type(method) is not str or method not in KNOWN_METHODS:  # else as it came: no call
        method, original = method_and_original(
            method if isinstance(method, str) and method else "GET"
        )
    scheme = get("wsgi.url_scheme")
    if not isinstance(scheme, str) or not scheme:
        scheme = "http"
    script, path = get("SCRIPT_NAME", ""), get("PATH_INFO", "")
    if (
        script.__class__ is str
        and path.__class__ is str
        and (_PLAIN_PATH or _compile_plain_path()).fullmatch(path := script + path)
    ):
        path = path or "/"  # ``_wsgi_path``'s usual case, in this frame
    else:
        path = _wsgi_path(environ)
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.scheme": scheme,
        "url.path": path,
    }
    if original is not None:
        attributes["http.request.method_original"] = original
    query = get("QUERY_STRING")
    if query and isinstance(query, str):
        attributes["url.query"] = redact_query(query)
    host = get("HTTP_X_FORWARDED_HOST") or get("HTTP_HOST")
    if host and isinstance(host, str):
        split = _split_hosts.get(host)
        if split is None:
            split = _split_host_header(host)
        address, port = split
        if port is None:
            port = _DEFAULT_PORTS.get(scheme)
    else:
        address = _text(environ, "SERVER_NAME")
        port = _port(environ, "SERVER_PORT")
    if address:
        attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
    peer = get("REMOTE_ADDR")
    if not isinstance(peer, str):
        peer = ""
    forwarded = get("HTTP_X_FORWARDED_FOR")
    client = (
        forwarded.split(",", 1)[0].strip() if forwarded and isinstance(forwarded, str) else peer
    )
    if client:
        attributes["client.address"] = client
    if peer:
        attributes["network.peer.address"] = peer
        peer_port = get("REMOTE_PORT")  # ``_port``'s rule, in this frame
        if type(peer_port) is not int:
            text = peer_port if isinstance(peer_port, str) else ""
            peer_port = int(text) if text.isdigit() else None
        if peer_port is not None:
            attributes["network.peer.port"] = peer_port
    agent = get("HTTP_USER_AGENT")
    if agent and isinstance(agent, str):
        attributes["user_agent.original"] = agent
    protocol = get("SERVER_PROTOCOL")
    version = (
        (_PROTOCOL_VERSIONS.get(protocol) or protocol_version(protocol))
        if isinstance(protocol, str)
        else None
    )
    if version:
        attributes["network.protocol.version"] = version
    return attributes


#: ``server_environ_attributes``: ``sdk/_speedups.c``'s twin of the function above where the
#: native module is built (it takes the usual request, a dict environ of strings with a known
#: method, a plain path and a Host header, and hands any other to the Python one); else that
#: function itself. The tests run both.
server_environ_attributes: Callable[[Mapping[str, Any]], dict[str, Any]] = (
    _python_server_environ_attributes
    if speedups is None
    else speedups.environ_attributes_for((globals(), _python_server_environ_attributes))
)


def environ_url(environ: Mapping[str, Any]) -> str:
    """The request's URL rebuilt from the environ, for the excluded-URL patterns."""
    scheme = _text(environ, "wsgi.url_scheme") or "http"
    host = _text(environ, "HTTP_HOST") or _text(environ, "SERVER_NAME")
    path = _text(environ, "SCRIPT_NAME") + _text(environ, "PATH_INFO")
    query = _text(environ, "QUERY_STRING")
    return f"{scheme}://{host}{path}?{query}" if query else f"{scheme}://{host}{path}"


def environ_headers(environ: Mapping[Any, Any]) -> list[tuple[str, str]]:
    """The request headers of a WSGI environ as (name, value) pairs, names with dashes.

    Entries whose name or value is not a string (a middleware's objects) are skipped.
    """
    headers = [
        (key[5:].replace("_", "-"), value)
        for key, value in environ.items()
        if isinstance(key, str) and key.startswith("HTTP_") and isinstance(value, str)
    ]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        value = _text(environ, key)
        if value:
            headers.append((key.replace("_", "-"), value))
    return headers


def server_status_attributes(span: Span, status_code: int, details: str | None = None) -> None:
    """``http.response.status_code``; 5xx sets ``error.type`` and status ERROR (4xx does not).

    ``details`` (unused: HTTP has only the code) makes it the toolkit's ``StatusRules.code``.
    """
    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 500:
        from telemetry_run.sdk.trace.api import StatusCode  # only here: an import per call costs

        span.set_attribute("error.type", str(status_code))
        span.set_status(StatusCode.ERROR)


#: ``(server.address, server.port)`` of the origins (``scheme://authority``) clients called
#: last: a service calls few hosts, and parsing one costs more than a look-up.
_origins: dict[str, tuple[str, int | None]] = {}
_ORIGINS_KEPT: Final = 256


#: ``scheme://authority`` at the start of a URL: the scheme up to the first ``://`` (anything,
#: as ``str.partition`` reads it), the authority up to the first ``/``, ``?`` or ``#``. One
#: match, where finding the three marks in Python took a loop; compiled by the first request.
_ORIGIN: re.Pattern[str] | None = None


def _compile_origin() -> re.Pattern[str]:
    global _ORIGIN
    _ORIGIN = re.compile(r"(.*?)://([^/?#]*)", re.DOTALL)
    return _ORIGIN


def _origin(url: str) -> tuple[str, int | None] | None:
    """``server.address`` and ``server.port`` of an absolute ``url`` (None: not absolute)."""
    match = (_ORIGIN or _compile_origin()).match(url)
    if match is None:
        return None
    origin = _origins.get(key := match[0])
    if origin is None:
        scheme, authority = match.groups()
        if "@" in authority:  # userinfo: parsed each time, never kept
            return _split_host(authority.rpartition("@")[2], DEFAULT_PORTS.get(scheme.lower()))
        origin = _split_host(authority, DEFAULT_PORTS.get(scheme.lower()))
        if len(_origins) >= _ORIGINS_KEPT:
            _origins.clear()  # atomic under threads, where evicting one key is not
        _origins[key] = origin
    return origin


def client_request_attributes(method: str, url: str, headers: Any = None) -> dict[str, Any]:
    """The attributes of a CLIENT span before the request is sent (``headers`` are not read:
    they are there so that a client site's arguments can be handed over as they are)."""
    if method in KNOWN_METHODS:  # ``method_and_original``'s common case, without the call
        attributes: dict[str, Any] = {"http.request.method": method, "url.full": redact_url(url)}
    else:
        method, original = method_and_original(method)
        attributes = {"http.request.method": method, "url.full": redact_url(url)}
        attributes["http.request.method_original"] = original
    origin = _origin(url)
    if origin is not None and origin[0]:
        attributes["server.address"] = origin[0]
        if origin[1] is not None:
            attributes["server.port"] = origin[1]
    return attributes


def client_status(span: Span, status_code: int, details: str | None = None) -> None:
    """``client_response`` without a version: the toolkit's ``StatusRules.code`` for clients."""
    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 400:
        from telemetry_run.sdk.trace.api import StatusCode  # only here: an import per call costs

        span.set_attribute("error.type", str(status_code))
        span.set_status(StatusCode.ERROR)


def client_response(span: Span, status_code: int, version: str | None = None) -> None:
    """A CLIENT span's response: 4xx and 5xx set ``error.type`` and status ERROR."""
    client_status(span, status_code)
    if version:
        span.set_attribute("network.protocol.version", version)


def client_exception(span: Span, exc: BaseException) -> None:
    """A CLIENT request that got no response: the exception recorded, its class as error.type."""
    from telemetry_run.sdk.trace.api import StatusCode

    span.record_exception(exc, escaped=True)
    span.set_attribute("error.type", exception_type(exc))
    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")


def exception_type(exc: BaseException) -> str:
    """The fully qualified class name ``error.type`` uses where there is no status code."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
