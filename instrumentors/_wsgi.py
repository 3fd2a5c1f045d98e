"""One SERVER span per request, shared by the WSGI frameworks (Flask) and Django's middleware.

``ServerRequest.start`` continues the incoming trace (the configured propagators read the
environ), starts the span with the request attributes samplers need, and makes it current;
the framework then tells it the route, the status, an unhandled exception. The context is
attached and detached in the same frame (the framework's entry point), and attached again
around each step of a streamed body, so a generator never detaches what another frame attached
and nothing leaks into the next request on the thread. The span ends when the body is
exhausted or closed, whichever comes first, so a streamed response is timed to its last byte.
A body made by the server's own ``wsgi.file_wrapper`` is returned as it is (the server
recognises it by its type and takes its sendfile path); its ``close`` ends the span.

Every method is called by instrumentors inside ``guard``; the application's own calls
(``start_response``, the body's ``next``/``close``) are made outside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors.base import guard
from telemetry_run.sdk.context import Context, attach, detach
from telemetry_run.sdk.propagation import WSGIEnvironGetter, extract
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.sdk.trace.current import set_span_in_context

if TYPE_CHECKING:
    from telemetry_run.sdk.context import Token
    from telemetry_run.sdk.trace.api import Span, Tracer

__all__ = ["ENVIRON_KEY", "ServerRequest", "StartResponse"]

#: Where the request's ``ServerRequest`` is kept in the environ, for the framework's later hooks.
ENVIRON_KEY: Final = "telemetry_run.server_request"

StartResponse = Callable[..., Any]

_getter: Final = WSGIEnvironGetter()


class ServerRequest:
    """The SERVER span of one request and the context that holds it."""

    __slots__ = (
        "_ended",
        "_file_wrapper",
        "_settings",
        "_token",
        "context",
        "exception_recorded",
        "method",
        "span",
        "status_code",
    )

    def __init__(
        self, span: Span, context: Context, settings: _http.HttpSettings, method: str
    ) -> None:
        self.span = span
        self.method = method
        self.context = context
        self._settings = settings
        self._token: Token | None = None
        self._ended = False
        self.status_code: int | None = None
        self.exception_recorded = False
        self._file_wrapper: object = None

    @classmethod
    def start(
        cls,
        tracer: Tracer,
        settings: _http.HttpSettings,
        environ: MutableMapping[str, Any],
        *,
        scheme: str | None = None,
    ) -> ServerRequest | None:
        """Start and attach the request's span; None for an excluded URL (no span at all).

        The request is kept in ``environ[ENVIRON_KEY]`` for the framework's later hooks;
        ``scheme`` overrides ``wsgi.url_scheme`` (Django's ASGI requests have none).
        """
        if settings.excludes() and settings.is_excluded(_http.environ_url(environ)):
            return None
        parent = extract(environ, None, _getter)
        attributes = _http.server_environ_attributes(environ)
        if scheme is not None:
            attributes["url.scheme"] = scheme
        span = tracer.start_span(
            _http.server_span_name(attributes["http.request.method"], None),
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        if settings.request_headers is not None and span.is_recording():
            span.set_attributes(
                settings.captured(
                    "http.request.header.",
                    settings.request_headers,
                    _http.environ_headers(environ),
                )
            )
        method = attributes["http.request.method"]
        request = cls(span, set_span_in_context(span, parent), settings, method)
        request._file_wrapper = environ.get("wsgi.file_wrapper")
        environ[ENVIRON_KEY] = request
        request._token = attach(request.context)  # last: nothing after it can fail
        return request

    # -- what the framework learns during the request ------------------------------------

    def set_route(self, route: str | None) -> None:
        """The matched route template: ``http.route`` and the span name ``GET /users/<id>``."""
        if route:
            span = self.span
            span.set_attribute("http.route", route)
            span.update_name(_http.server_span_name(self.method, route))

    def set_status(self, status_code: int) -> None:
        self.status_code = status_code
        _http.server_status_attributes(self.span, status_code)

    def set_response_headers(self, headers: Iterable[tuple[str, str]]) -> None:
        pattern = self._settings.response_headers
        if pattern is not None and self.span.is_recording():
            self.span.set_attributes(
                self._settings.captured("http.response.header.", pattern, headers)
            )

    def record_exception(self, exc: BaseException) -> None:
        """An unhandled exception of the application: an ``exception`` event, once."""
        if self.exception_recorded:
            return
        self.exception_recorded = True
        self.span.record_exception(exc, escaped=True)
        if self.status_code is None:
            self.span.set_attribute("error.type", _http.exception_type(exc))
        self.span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")

    def start_response_wrapper(self, start_response: StartResponse) -> StartResponse:
        """``start_response`` that notes the status (and allow-listed headers) first."""

        def noted_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            with guard("http server: start_response"):
                self.set_status(int(str(status)[:3]))
                if self._settings.response_headers is not None:
                    self.set_response_headers(headers)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        return noted_start_response

    # -- the end of the request ----------------------------------------------------------

    def detach(self) -> None:
        """Leave the request's context (in the frame that attached it); idempotent."""
        token, self._token = self._token, None
        if token is not None:
            detach(token)

    def fail(self, exc: BaseException) -> None:
        """The framework's entry point raised: record, end, detach."""
        self.record_exception(exc)
        self.end()
        self.detach()

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self.span.end()

    def body(self, iterable: Iterable[Any]) -> Iterable[Any]:
        """The response body, ending the span when it is exhausted or closed.

        The server's file wrapper is not wrapped: the WSGI spec lets a server send it with
        ``sendfile`` only if the application returns that very object.
        """
        wrapper = self._file_wrapper
        is_file = isinstance(wrapper, type) and isinstance(iterable, wrapper)
        if is_file and _end_on_close(iterable, self):
            return iterable
        return _Body(iterable, self)


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


class _Body:
    """A WSGI response body that keeps the request's context current while it is produced."""

    __slots__ = ("_close", "_iterator", "_request")

    def __init__(self, iterable: Iterable[Any], request: ServerRequest) -> None:
        self._request = request
        self._close: Callable[[], Any] | None = getattr(iterable, "close", None)
        self._iterator: Iterator[Any] = iter(iterable)

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> Any:
        request = self._request
        token = attach(request.context)
        try:
            return next(self._iterator)
        except StopIteration:
            with guard("http server: end of the body"):
                request.end()
            raise
        except BaseException as exc:
            with guard("http server: error in the body"):
                request.record_exception(exc)
                request.end()
            raise
        finally:
            detach(token)

    def close(self) -> None:
        try:
            if self._close is not None:
                self._close()
        finally:
            with guard("http server: body closed"):
                self._request.end()
