"""requests: one CLIENT span per ``Session.send``, with the trace context injected.

``Session.send`` is the one place every request passes through (``requests.get``, a
``Session``, a prepared request sent by hand). The caller's headers are never changed: the
request that leaves is a shallow copy with its own headers dict, and the copy is swapped back
for the caller's object wherever requests hands it out (``response.request``, the history's,
an exception's ``request``), so the app sees the request it made. Redirects that ``send``
follows call ``send`` again from inside it; those hops get the context injected but no span of
their own (the toolkit's one CLIENT span per logical call), so ``url.full`` is the original URL
and ``http.request.resend_count`` the hops followed: the conventions' rule for instrumentations
that hook only the top-level call.
"""

from __future__ import annotations

import copy
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
    """Patches ``requests.sessions.Session.send``."""

    site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import requests.sessions

        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.site = client_site(tracer, "requests", config)
        self.patcher.wrap(requests.sessions, "Session.send", self._send)

    def _send(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        request: Any = None
        bound: tuple[str, str, Any] | None = None
        try:  # not ``guard``: this runs for every request, and a try costs nothing
            request = args[0] if args else kwargs["request"]
            sent = copy.copy(request)  # the caller's request and headers stay as they were
            sent.headers = request.headers.copy()
            bound = (str(sent.method), str(sent.url), sent.headers)
        except Exception as exc:  # noqa: BLE001  # reported; the request goes on untraced
            _report("requests: before send", exc)
        if bound is None:  # a step of ours failed (reported): the call as it was made
            return wrapped(*args, **kwargs)
        call_args = (sent, *args[1:]) if args else args
        call_kwargs = kwargs if args else {**kwargs, "request": sent}
        with self.site.call(*bound) as call:
            try:
                response = wrapped(*call_args, **call_kwargs)
            except BaseException as exc:
                with guard("requests: restore the request"):
                    _give_back(request, sent, exc)
                raise
            try:  # not ``guard``: this runs for every request, and a try costs nothing
                _give_back(request, sent, None, response)
            except Exception as exc:  # noqa: BLE001  # reported; the response goes to the app
                _report("requests: restore the request", exc)
            try:
                _response(call, response)
            except Exception as exc:  # noqa: BLE001  # reported; the response goes to the app
                _report("requests: response", exc)
        return response


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
