"""Django: one SERVER span per request, WSGI and ASGI, named from the resolved route.

Every Django handler (``WSGIHandler``, ``ASGIHandler``, the test ``Client``) builds its chain
from ``settings.MIDDLEWARE`` in ``BaseHandler.load_middleware``: wrapping that one method puts
``TelemetryMiddleware`` first in each chain without the user editing settings, at the moment
settings are configured (they are not yet at ``import django``). The middleware is sync and
async capable, so an ASGI request pays no thread hop for it; ``_wsgi.ServerRequest`` (the
toolkit's ``server_call``) holds the span, which learns the route from
``request.resolver_match`` once the view has run, the status from the response and the view's
exception from ``process_exception``. A streamed response ends the span when Django closes it,
so the span lasts until the last byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from telemetry_run._version import __version__
from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors._wsgi import ENVIRON_KEY, ServerRequest, server_site
from telemetry_run.instrumentors.base import Instrumentor, guard

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["MIDDLEWARE", "DjangoInstrumentor", "TelemetryMiddleware"]

#: The dotted path inserted first in ``settings.MIDDLEWARE`` (users may list it themselves to
#: choose its place; it is then left where they put it).
MIDDLEWARE: Final = f"{__name__}.TelemetryMiddleware"

# Where process_exception leaves the view's exception until the final status is known: only a
# 5xx makes it an error (Http404 and PermissionDenied reach process_exception too).
_EXCEPTION_KEY: Final = "telemetry_run.django.exception"


class DjangoInstrumentor(Instrumentor):
    """Patches ``BaseHandler.load_middleware`` to put ``TelemetryMiddleware`` first."""

    site: CallSite
    _inserted: bool = False

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        global _instrumentor
        self.site = server_site(
            tracer_provider.get_tracer(__name__, __version__),
            "django",
            _http.HttpSettings.from_config(config, "django", server=True),
            self.enabled,
        )
        self._inserted = False
        self.patcher.wrap(
            "django.core.handlers.base", "BaseHandler.load_middleware", self._load_middleware
        )
        # The middleware is built by Django from a dotted path, so it finds us here; it looks
        # at every request, so handlers built under an earlier instance follow the current one.
        _instrumentor = self

    def _uninstrument(self) -> None:
        if self._inserted:
            self._inserted = False
            with guard("django: remove the middleware"):
                _remove_middleware()

    def _load_middleware(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        # ``active``, not ``enabled()``: a handler built inside suppress_instrumentation() lives
        # on after it; the middleware checks the gate on each request instead.
        if self.active:
            with guard("django: insert the middleware"):
                if _insert_middleware():
                    self._inserted = True
        return wrapped(*args, **kwargs)


_instrumentor: DjangoInstrumentor | None = None


def _settings() -> Any:
    from django.conf import settings  # type: ignore[import-untyped]  # Django ships no types

    return settings


def _insert_middleware() -> bool:
    """Put ours first in ``settings.MIDDLEWARE`` (a new list) unless it is listed already."""
    settings = _settings()
    middleware = settings.MIDDLEWARE
    if middleware is None or MIDDLEWARE in middleware:
        return False
    settings.MIDDLEWARE = [MIDDLEWARE, *middleware]
    return True


def _remove_middleware() -> None:
    settings = _settings()
    if settings.configured and MIDDLEWARE in (settings.MIDDLEWARE or ()):
        settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if path != MIDDLEWARE]


class TelemetryMiddleware:
    """The request's SERVER span; inert unless ``DjangoInstrumentor`` is instrumented.

    Django gives it an async ``get_response`` under ASGI (every middleware after it being
    async capable) and it then is a coroutine function itself, as Django's own are.
    """

    sync_capable: Final = True
    async_capable: Final = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)
        server = _start(_instrumentor, request)
        if server is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            _failed(server, request, exc)
            raise
        _respond(server, request, response)
        return response

    async def __acall__(self, request: Any) -> Any:
        server = _start(_instrumentor, request)
        if server is None:
            return await self.get_response(request)
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            _failed(server, request, exc)
            raise
        _respond(server, request, response)
        return response

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Keep the view's exception for the response (None: Django's handling goes on)."""
        with guard("django: view exception"):
            if _server_of(request) is not None:
                request.META[_EXCEPTION_KEY] = exception


def _server_of(request: Any) -> ServerRequest | None:
    server = request.META.get(ENVIRON_KEY)
    return server if isinstance(server, ServerRequest) else None


def _start(instrumentor: DjangoInstrumentor | None, request: Any) -> ServerRequest | None:
    """Start and attach the span (None when not traced: the gate is off, an excluded URL, or
    ours failed)."""
    if instrumentor is None or not instrumentor.enabled():
        return None
    with guard("django: request start"):
        # request.scheme, not META: ASGI requests have no wsgi.url_scheme, and it honours
        # SECURE_PROXY_SSL_HEADER as the original scheme.
        return ServerRequest.start(instrumentor.site, request.META, scheme=request.scheme)
    return None


def _set_route(server: ServerRequest, request: Any) -> None:
    # ResolverMatch.route is the joined pattern of nested include()s; there is no match (None)
    # when the resolver found nothing or a middleware answered before the view.
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if isinstance(route, str):
        server.set_route(route)


def _respond(server: ServerRequest, request: Any, response: Any) -> None:
    """Note the response, end the span (or leave that to Django's close), and detach."""
    deferred = False
    with guard("django: response"):
        deferred = _note_response(server, request, response)
    if not deferred:
        with guard("django: request end"):
            server.end()
    with guard("django: detach"):
        server.detach()


def _note_response(server: ServerRequest, request: Any, response: Any) -> bool:
    """Route, status, headers and exception; True when the end waits for ``response.close()``."""
    _set_route(server, request)
    status_code = int(response.status_code)
    server.set_status_code(status_code)
    settings = server.site.settings
    if settings is not None and settings.response_headers is not None:
        server.capture_response_headers(response.items())
    exception = request.META.pop(_EXCEPTION_KEY, None)
    if isinstance(exception, BaseException) and status_code >= 500:
        server.record_exception(exception)
    if not getattr(response, "streaming", False):
        return False
    closers = getattr(response, "_resource_closers", None)
    if not isinstance(closers, list):
        return False
    _stream_in_context(server, response)
    # HttpResponseBase.close() runs these, as the WSGI server's close() and ASGIHandler do.
    closers.append(_closer(server))
    return True


def _closer(server: ServerRequest) -> Callable[[], None]:
    def end_request() -> None:
        with guard("django: response closed"):
            server.end()

    return end_request


def _stream_in_context(server: ServerRequest, response: Any) -> None:
    """Make the request's context current around each chunk of a streamed body.

    The iterator is replaced under the response (not through ``streaming_content``, whose
    setter would register another closer and, on a FileResponse, lose ``file_to_stream``).
    """
    iterator = getattr(response, "_iterator", None)
    if iterator is not None:  # its exception is recorded; Django's close ends the span
        response._iterator = server.stream(iterator, end=False)


def _failed(server: ServerRequest, request: Any, exc: BaseException) -> None:
    """The chain raised (DEBUG_PROPAGATE_EXCEPTIONS, a cancelled ASGI request): end, detach."""
    with guard("django: request failed"):
        _set_route(server, request)
        request.META.pop(_EXCEPTION_KEY, None)
        if isinstance(exc, asyncio.CancelledError):
            server.end()  # the client disconnected: a cancellation is not an error
        else:
            server.fail(exc)
    with guard("django: detach"):
        server.detach()
