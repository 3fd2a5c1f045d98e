"""requests: one CLIENT span per ``Session.send``, with the trace context injected.

``Session.send`` is the one place every request passes through (``requests.get``, a
``Session``, a prepared request sent by hand). The caller's headers are never changed: the
request that leaves is a shallow copy with its own headers dict, and the copy is swapped back
for the caller's object wherever requests hands it out (``response.request``, the history's,
an exception's ``request``), so the app sees the request it made. Redirects that ``send``
follows call ``send`` again from inside it; those hops get the context injected but no span of
their own, so one logical call is one span (``url.full`` the original URL,
``http.request.resend_count`` the hops followed): the conventions' rule for instrumentations
that hook only the top-level call.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors.base import Instrumentor, guard
from telemetry_run.sdk.context import attach, detach, get_current, get_value, set_value
from telemetry_run.sdk.propagation import inject
from telemetry_run.sdk.trace.api import SpanKind
from telemetry_run.sdk.trace.current import set_span_in_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.sdk.context import Token
    from telemetry_run.sdk.trace.api import Span, Tracer, TracerProvider

__all__ = ["RequestsInstrumentor"]

_VERSIONS: Final = {10: "1.0", 11: "1.1", 20: "2", 30: "3"}


class RequestsInstrumentor(Instrumentor):
    """Patches ``requests.sessions.Session.send``."""

    tracer: Tracer
    settings: _http.HttpSettings

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import requests.sessions

        self.tracer = tracer_provider.get_tracer(__name__, __version__)
        self.settings = _http.HttpSettings.from_config(config, "requests", server=False)
        self.patcher.wrap(requests.sessions, "Session.send", self._send)

    def _send(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        span: Span | None = None
        token: Token | None = None
        request: Any = None
        sent: Any = None
        with guard("requests: before send"):
            request = args[0] if args else kwargs["request"]
            url = str(request.url)
            if not self.settings.is_excluded(url):
                copied = copy.copy(request)  # the caller's request and headers stay as they were
                copied.headers = request.headers.copy()
                if get_value(_http.CLIENT_SPAN_KEY) is not None:
                    inject(copied.headers)  # a redirect hop inside our span: context only
                else:
                    span, token = self._start(copied, url)
                sent = copied
        if sent is None:
            return wrapped(*args, **kwargs)
        call_args = (sent, *args[1:]) if args else args
        call_kwargs = kwargs if args else {**kwargs, "request": sent}
        try:
            response = wrapped(*call_args, **call_kwargs)
        except BaseException as exc:
            with guard("requests: restore the request"):
                _give_back(request, sent, exc)
            if span is not None:
                with guard("requests: failed send"):
                    _http.client_exception(span, exc)
                with guard("requests: end"):
                    self._end(span, token)
            raise
        with guard("requests: restore the request"):
            _give_back(request, sent, None, response)
        if span is not None:
            with guard("requests: response"):
                self._response(span, response)
            with guard("requests: end"):
                self._end(span, token)
        return response

    def _start(self, sent: Any, url: str) -> tuple[Span, Token]:
        attributes = _http.client_request_attributes(str(sent.method), url)
        span = self.tracer.start_span(
            _http.client_span_name(attributes["http.request.method"]),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        context = set_value(_http.CLIENT_SPAN_KEY, span, set_span_in_context(span, get_current()))
        inject(sent.headers, context)
        pattern = self.settings.request_headers
        if pattern is not None and span.is_recording():
            span.set_attributes(
                self.settings.captured("http.request.header.", pattern, sent.headers.items())
            )
        return span, attach(context)

    def _response(self, span: Span, response: Any) -> None:
        raw = getattr(response, "raw", None)
        version = _VERSIONS.get(getattr(raw, "version", None) or 0)
        _http.client_response(span, int(response.status_code), version)
        history = getattr(response, "history", None)
        if history:
            span.set_attribute("http.request.resend_count", len(history))
        pattern = self.settings.response_headers
        if pattern is not None and span.is_recording():
            span.set_attributes(
                self.settings.captured("http.response.header.", pattern, response.headers.items())
            )

    @staticmethod
    def _end(span: Span, token: Token | None) -> None:
        if token is not None:
            detach(token)
        span.end()


def _give_back(request: Any, sent: Any, exc: BaseException | None, response: Any = None) -> None:
    """Put the caller's ``request`` back wherever requests recorded our copy ``sent``."""
    if exc is not None:
        if getattr(exc, "request", None) is sent:
            exc.request = request  # type: ignore[attr-defined]
        response = getattr(exc, "response", None)
    if response is None:
        return
    for each in (response, *(getattr(response, "history", None) or ())):
        if getattr(each, "request", None) is sent:
            each.request = request
