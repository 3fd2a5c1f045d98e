"""aiohttp client: one CLIENT span per ``ClientSession._request``, the trace context injected.

``_request`` is the coroutine behind every call of a session (``session.get``,
``session.request``, ``aiohttp.request``); it follows redirects itself, so its span is the
logical call: ``url.full`` the URL asked for (the session's ``base_url`` and ``params``
applied), ``http.request.resend_count`` the redirect hops, every hop carrying the span's
context. Patching it, rather than adding a trace config to each session, keeps the span current
for the whole call in the caller's task (a trace config's callbacks run where aiohttp chooses),
and covers sessions made before instrumentation. The caller's headers are never changed: the
ones sent are a copy with the context, made only when there is a context to carry. The span ends
when ``_request`` returns, once the response's headers are in (the body is read afterwards, by
the app); ``raise_for_status`` errors keep their status code.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors._http_client import (
    client_site,
    keeps_no_secret,
    record_response,
)
from telemetry_run.instrumentors.base import Instrumentor, _report, guard
from telemetry_run.sdk.trace.api import INVALID_SPAN

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import Call, CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["AiohttpClientInstrumentor"]


#: The URL text of a session's ``str_or_url`` (a str, no ``params``), by the session's
#: ``base_url`` and that str: a service asks for the same URLs again and again, and yarl builds
#: the text in Python each time. Up to this many are remembered, each of at most
#: ``_URL_TEXT_LONGEST`` characters and never one holding a secret (emptied when full).
_URL_TEXTS_KEPT: Final = 128
_URL_TEXT_LONGEST: Final = 512
_url_texts: dict[tuple[Any, str], str] = {}


def _url(session: Any, str_or_url: Any, params: Any) -> str:
    """The URL ``_request`` will ask for: the session's ``base_url`` and ``params`` applied."""
    if params or type(str_or_url) is not str:
        url = session._build_url(str_or_url)
        return str(url.extend_query(params) if params else url)
    key = (getattr(session, "_base_url", None), str_or_url)
    text = _url_texts.get(key)
    if text is None:
        text = str(session._build_url(str_or_url))
        if len(text) <= _URL_TEXT_LONGEST and keeps_no_secret(text):
            if len(_url_texts) >= _URL_TEXTS_KEPT:
                _url_texts.clear()  # atomic under threads, where evicting one key is not
            _url_texts[key] = text
    return text


class AiohttpClientInstrumentor(Instrumentor):
    """Puts a traced ``_request`` in place of ``aiohttp.ClientSession._request``."""

    site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import aiohttp

        tracer = tracer_provider.get_tracer(__name__, __version__)
        # The site's gate is ours (evaluated in C by the native start), and the context is
        # injected into a dict first: a call that is not traced copies no headers.
        self.site = client_site(tracer, "aiohttp_client", config, enabled=self.enabled, apart=True)
        # Every request passes here: a plain function, no wrapt proxy (``Patcher.replace``).
        self.patcher.replace(aiohttp.ClientSession, "_request", self._traced_request)

    def _traced_request(self, original: Callable[..., Any]) -> Callable[..., Any]:
        import aiohttp
        import multidict

        start, untraced = self.site.start, self.site.untraced
        headers_type, response_error = multidict.CIMultiDict, aiohttp.ClientResponseError

        @functools.wraps(original)
        async def _request(session: Any, method: Any, str_or_url: Any, **kwargs: Any) -> Any:
            carrier: dict[str, str] = {}
            # Not ``guard`` on the steps every request takes: a try costs nothing, a guard
            # three calls. The except clauses are guard's (Exception only, reported, swallowed).
            try:
                given = kwargs.get("headers")
                url = _url(session, str_or_url, kwargs.get("params"))
                call = start(str(method).upper(), url, carrier, _EMPTY if given is None else given)
            except Exception as exc:  # noqa: BLE001  # reported; the call as it was made
                _report("aiohttp_client: before request", exc)
                return await original(session, method, str_or_url, **kwargs)
            call = call or untraced
            if carrier:  # the headers sent: a copy of the caller's, with the context
                try:
                    headers = headers_type() if given is None else headers_type(given)
                    headers.update(carrier)
                    kwargs = {**kwargs, "headers": headers}
                except Exception as exc:  # noqa: BLE001  # reported; sent without the context
                    _report("aiohttp_client: before request", exc)
            elif call is untraced:  # not traced, nothing to carry
                return await original(session, method, str_or_url, **kwargs)
            with call:
                try:
                    response = await original(session, method, str_or_url, **kwargs)
                except response_error as exc:  # raise_for_status: the response's code
                    with guard("aiohttp_client: response"):
                        call.set_status_code(int(exc.status))
                    raise
                if call.span is not INVALID_SPAN:  # a traced call
                    try:  # not ``guard``: every response comes here
                        _response(call, response)
                    except Exception as exc:  # noqa: BLE001  # reported; the response goes on
                        _report("aiohttp_client: response", exc)
            return response

        return _request


#: The request headers of a call made without any (what header capture reads).
_EMPTY: Final[dict[str, str]] = {}


#: ``network.protocol.version`` of the ``HttpVersion`` tuples aiohttp reports, made once each.
_VERSIONS: dict[Any, str] = {}


def _version_text(version: Any) -> str:
    text = f"{version.major}.{version.minor}"
    text = text[:-2] if text == "2.0" else text
    if len(_VERSIONS) < 8:  # a handful exist: never a growing cache
        _VERSIONS[version] = text
    return text


def _response(call: Call, response: Any) -> None:
    version = getattr(response, "version", None)
    text = None
    if version is not None:
        text = _VERSIONS.get(version) or _version_text(version)
    resends = len(response.history)
    record_response(call, int(response.status), text, resends, response.headers)
