"""One SERVER span per request, shared by the WSGI frameworks (Flask) and Django's middleware.

``server_site`` builds the toolkit's ``server_call`` for a WSGI environ (or Django's META): the
configured propagators read the environ, the span starts with the request attributes samplers
need, the excluded URLs and the captured headers follow the framework's ``HttpSettings``.
``ServerRequest.start`` starts and attaches it; the framework then tells it the route, the
status, an unhandled exception. The context is attached and detached in the same frame (the
framework's entry point), and attached again around each step of a streamed body, so a
generator never detaches what another frame attached and nothing leaks into the next request on
the thread. The span ends when the body is exhausted or closed, whichever comes first, so a
streamed response is timed to its last byte. A body made by the server's own
``wsgi.file_wrapper`` is returned as it is (the server recognises it by its type and takes its
sendfile path); its ``close`` ends the span.

Every method is called by instrumentors inside ``guard``; the application's own calls
(``start_response``, the body's ``next``/``close``) are made outside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors.base import _report, guard
from telemetry_run.instrumentors.toolkit import (
    HTTP_SERVER,
    Call,
    CallSite,
    server_call,
)
from telemetry_run.sdk.propagation import WSGIEnvironGetter

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.api import Tracer

__all__ = ["ENVIRON_KEY", "ServerRequest", "StartResponse", "server_site"]

#: Where the request's ``ServerRequest`` is kept in the environ, for the framework's later hooks.
ENVIRON_KEY: Final = "telemetry_run.server_request"

StartResponse = Callable[..., Any]

_getter: Final = WSGIEnvironGetter()


def _attributes(environ: Mapping[str, Any], scheme: str | None = None) -> dict[str, Any]:
    """The request attributes; ``scheme`` overrides ``wsgi.url_scheme`` (Django's ASGI
    requests have none)."""
    attributes = _http.server_environ_attributes(environ)
    if scheme is not None:
        attributes["url.scheme"] = scheme
    return attributes


def _span_name(attributes: Mapping[str, Any], *args: Any) -> str:
    # ``_http.server_span_name(method, None)`` without the call: the route comes later.
    method = attributes["http.request.method"]
    return method if method in _http.KNOWN_METHODS else "HTTP"


def _environ(environ: Mapping[str, Any], scheme: str | None = None) -> Mapping[str, Any]:
    return environ


def _request_headers(
    environ: Mapping[str, Any], scheme: str | None = None
) -> list[tuple[str, str]]:
    return _http.environ_headers(environ)


def server_site(
    tracer: Tracer, name: str, settings: _http.HttpSettings, enabled: Callable[[], bool]
) -> CallSite:
    """The site of a framework's requests: ``site.start(environ, scheme)`` is a ServerRequest."""
    excluded = None
    if settings.excludes():

        def excluded(environ: Mapping[str, Any], scheme: str | None = None) -> bool:
            return settings.is_excluded(_http.environ_url(environ))

    return server_call(
        tracer,
        name,
        attributes=_attributes,
        span_name=_span_name,
        carrier=_environ,
        getter=_getter,
        rules=HTTP_SERVER,
        settings=settings,
        excluded=excluded,
        request_headers=_request_headers,
        enabled=enabled,
        call_type=ServerRequest,
        noun="request",
        metric="http.server.request.duration",
    )


class ServerRequest(Call):
    """The SERVER span of one HTTP request, with the steps a framework adds to a call."""

    __slots__ = ("_file_wrapper",)

    _file_wrapper: object

    @classmethod
    def start(
        cls, site: CallSite, environ: MutableMapping[str, Any], *, scheme: str | None = None
    ) -> ServerRequest | None:
        """Start and attach the request's span; None for an excluded URL (no span at all).

        The request is kept in ``environ[ENVIRON_KEY]`` for the framework's later hooks.
        """
        request = site.start(environ, scheme)
        if not isinstance(request, ServerRequest):  # None, or a site not made by server_site
            return None
        request._file_wrapper = environ.get("wsgi.file_wrapper")
        environ[ENVIRON_KEY] = request
        return request

    def set_route(self, route: str | None) -> None:
        """The matched route template: ``http.route`` and the span name ``GET /users/<id>``."""
        if route:
            self.route = route
            span = self.span
            span.set_attribute("http.route", route)
            span.update_name(_http.server_span_name(self.attributes["http.request.method"], route))

    def start_response_wrapper(self, start_response: StartResponse) -> StartResponse:
        """``start_response`` that notes the status (and allow-listed headers) first."""

        def noted_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            try:  # not ``guard``: every response comes here
                self.set_status_code(int(str(status)[:3]))
                settings = self.site.settings
                if settings is not None and settings.response_headers is not None:
                    self.capture_response_headers(headers)
            except Exception as exc:  # noqa: BLE001  # reported; the response goes on
                _report("http server: start_response", exc)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        return noted_start_response

    def body(self, iterable: Iterable[Any]) -> Iterable[Any]:
        """The response body, ending the span when it is exhausted or closed.

        The server's file wrapper is not wrapped: the WSGI spec lets a server send it with
        ``sendfile`` only if the application returns that very object.
        """
        wrapper = self._file_wrapper
        is_file = isinstance(wrapper, type) and isinstance(iterable, wrapper)
        if is_file and _end_on_close(iterable, self):
            return iterable
        # The server closes a WSGI body (PEP 3333): no finalizer watches it.
        stream: Iterable[Any] = self.stream(iterable, closed=True)
        return stream


def _end_on_close(body: Any, request: ServerRequest) -> bool:
    """Make ``body.close()`` end the span too; False if the object takes no attribute."""
    close: Callable[[], Any] | None = getattr(body, "close", None)

    def close_and_end() -> None:
        try:
            if close is not None:
                close()
        finally:
            with guard("http server: file body closed"):
                request.end()

    try:
        body.close = close_and_end
    except (AttributeError, TypeError):
        return False
    return True
