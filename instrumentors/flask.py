"""Flask: one SERVER span per request, named from the matched URL rule.

Three patch points on the ``Flask`` class, so every application (created before or after the
patch, wrapped in WSGI middleware or not) is covered: ``wsgi_app`` starts and ends the span
(``_wsgi.ServerRequest``, made by the toolkit's ``server_call``), ``full_dispatch_request``
learns the matched rule once the request context is pushed, and ``handle_exception`` sees the
unhandled exception that Flask turns into a 500 (the application's own error handlers and
response stay as they are).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from telemetry_run._version import __version__
from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors._wsgi import ENVIRON_KEY, ServerRequest, server_site
from telemetry_run.instrumentors.base import Instrumentor, _report, guard

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["FlaskInstrumentor"]


class FlaskInstrumentor(Instrumentor):
    """Patches ``flask.Flask``: ``wsgi_app``, ``full_dispatch_request``, ``handle_exception``."""

    site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import flask

        self.site = server_site(
            tracer_provider.get_tracer(__name__, __version__),
            "flask",
            _http.HttpSettings.from_config(config, "flask", server=True),
            self.enabled,
        )
        # Flask >= 2.2 keeps the request context in a ContextVar: reading it directly costs a
        # fraction of two look-ups through the ``flask.request`` proxy.
        self._current_request = _current_request_reader(flask)
        # The two methods every request calls are replaced by plain functions (no wrapt proxy:
        # see ``Patcher.replace``); the rare ``handle_exception`` is wrapped.
        self.patcher.replace(flask.Flask, "wsgi_app", self._traced_wsgi_app)
        self.patcher.replace(flask.Flask, "full_dispatch_request", self._routed_dispatch)
        self.patcher.wrap(flask, "Flask.handle_exception", self._handle_exception)

    def _traced_wsgi_app(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """``Flask.wsgi_app`` starting and ending the request's span around ``original``."""
        instrumentor = self

        @functools.wraps(original)
        def wsgi_app(app: Any, environ: Any, start_response: Any) -> Any:
            request: ServerRequest | None = None
            # Not ``guard`` on the steps every request takes: a try costs nothing, a guard
            # three calls. The except clauses are guard's (Exception only, reported, swallowed).
            try:
                noted = ServerRequest.start(instrumentor.site, environ)
                if noted is not None:
                    start_response = noted.start_response_wrapper(start_response)
                    request = noted
            except Exception as exc:  # noqa: BLE001  # reported; the request goes on untraced
                _report("flask: request start", exc)
            if request is None:
                return original(app, environ, start_response)
            try:
                body = original(app, environ, start_response)
            except BaseException as exc:
                with guard("flask: request failed"):
                    request.fail(exc)
                raise
            try:
                try:
                    return request.body(body)
                except Exception as exc:  # noqa: BLE001  # reported; the body goes out unwrapped
                    _report("flask: response body", exc)
                with guard("flask: request end"):  # the body could not be wrapped: end now
                    request.end()
                return body
            finally:
                request.detach()  # never raises (a foreign detach is tolerated by the SDK)

        return wsgi_app

    def _routed_dispatch(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """``Flask.full_dispatch_request`` noting the matched rule first (the request context
        is pushed by then)."""
        instrumentor = self
        current_request = self._current_request

        @functools.wraps(original)
        def full_dispatch_request(app: Any) -> Any:
            if instrumentor.active:
                try:  # not ``guard``: every request comes here
                    flask_request = current_request()
                    request = flask_request.environ.get(ENVIRON_KEY) if flask_request else None
                    if request is not None:
                        rule = flask_request.url_rule
                        request.set_route(rule.rule if rule is not None else None)
                except Exception as exc:  # noqa: BLE001  # reported; the request goes on
                    _report("flask: route", exc)
            return original(app)

        return full_dispatch_request

    def _handle_exception(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if self.active:
            with guard("flask: unhandled exception"):
                flask_request = self._current_request()
                request = flask_request.environ.get(ENVIRON_KEY) if flask_request else None
                exc = args[0] if args else kwargs.get("e")
                if request is not None and isinstance(exc, BaseException):
                    request.record_exception(exc)
        return wrapped(*args, **kwargs)


def _current_request_reader(flask: Any) -> Callable[[], Any]:
    """A function returning the current ``flask.Request`` (None outside a request)."""
    context_var = getattr(flask.globals, "_cv_request", None)
    if context_var is None:  # not a Flask we support, but stay correct: go through the proxy
        return lambda: flask.request._get_current_object() if flask.has_request_context() else None

    def current_request() -> Any:
        context = context_var.get(None)
        return None if context is None else context.request

    return current_request
