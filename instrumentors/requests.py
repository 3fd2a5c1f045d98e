"""requests: one CLIENT span per ``Session.send``, with the trace context injected.

``Session.send`` is the one place every request passes through (``requests.get``, a
``Session``, a prepared request sent by hand). The caller's headers are never changed: the
context is written into a dict first, and when there is one to carry the request that leaves
is a shallow copy with its own headers dict (else the caller's own), and the copy is swapped back
for the caller's object wherever requests hands it out (``response.request``, the history's,
an exception's ``request``), so the app sees the request it made. Redirects that ``send``
follows call ``send`` again from inside it; those hops get the context injected but no span of
their own (the toolkit's one CLIENT span per logical call), so ``url.full`` is the original URL
and ``http.request.resend_count`` the hops followed: the conventions' rule for instrumentations
that hook only the top-level call.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any

from telemetry_run._version import __version__
from telemetry_run.instrumentors._http_client import VERSIONS, client_site, record_response
from telemetry_run.instrumentors.base import Instrumentor, _report, guard

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import Call, CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["RequestsInstrumentor"]


class RequestsInstrumentor(Instrumentor):
    """Puts a traced ``send`` in place of ``requests.Session.send``."""

    site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import requests.sessions

        tracer = tracer_provider.get_tracer(__name__, __version__)
        # The site's gate is ours (evaluated in C by the native start), and the context is
        # injected into a dict first: a call that is not traced copies nothing.
        self.site = client_site(tracer, "requests", config, enabled=self.enabled, apart=True)
        # Every request passes here: a plain function, no wrapt proxy (``Patcher.replace``).
        self.patcher.replace(requests.sessions.Session, "send", self._traced_send)

    def _traced_send(self, original: Callable[..., Any]) -> Callable[..., Any]:
        start, untraced = self.site.start, self.site.untraced

        @functools.wraps(original)
        def send(session: Any, request: Any, **kwargs: Any) -> Any:
            carrier: dict[str, str] = {}
            try:  # not ``guard``: this runs for every request, and a try costs nothing
                call = start(str(request.method), str(request.url), carrier, request.headers)
            except Exception as exc:  # noqa: BLE001  # reported; the request goes on untraced
                _report("requests: before send", exc)
                return original(session, request, **kwargs)
            call = call or untraced
            sent = _with_context(request, carrier) if carrier else request
            if call is untraced and sent is request:  # not traced, nothing to carry
                return original(session, request, **kwargs)
            with call:
                try:
                    response = original(session, sent, **kwargs)
                except BaseException as exc:
                    if sent is not request:
                        with guard("requests: restore the request"):
                            _give_back(request, sent, exc)
                    raise
                if sent is not request:
                    try:  # not ``guard``: this runs for every request, and a try costs nothing
                        _give_back(request, sent, None, response)
                    except Exception as exc:  # noqa: BLE001  # reported; the response goes on
                        _report("requests: restore the request", exc)
                if call is not untraced:
                    try:
                        _response(call, response)
                    except Exception as exc:  # noqa: BLE001  # reported; the response goes on
                        _report("requests: response", exc)
            return response

        return send


def _with_context(request: Any, carrier: dict[str, str]) -> Any:
    """A copy of ``request`` sending the ``carrier``'s headers too (the caller's request when the
    copy fails: it then goes without the context, reported)."""
    try:
        sent = copy.copy(request)  # the caller's request and headers stay as they were
        sent.headers = headers = request.headers.copy()
        headers.update(carrier)
    except Exception as exc:  # noqa: BLE001  # reported; the request goes without the context
        _report("requests: before send", exc)
        return request
    return sent


def _response(call: Call, response: Any) -> None:
    raw = getattr(response, "raw", None)
    version = VERSIONS.get(getattr(raw, "version", None) or 0)
    history = getattr(response, "history", None)
    record_response(call, int(response.status_code), version, len(history or ()), response.headers)


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
