"""aiohttp client: one CLIENT span per ``ClientSession._request``, the trace context injected.

``_request`` is the coroutine behind every call of a session (``session.get``,
``session.request``, ``aiohttp.request``); it follows redirects itself, so its span is the
logical call: ``url.full`` the URL asked for (the session's ``base_url`` and ``params``
applied), ``http.request.resend_count`` the redirect hops, every hop carrying the span's context.
Patching it, rather than adding a trace config to each session, keeps the span current for the
whole call in the caller's task (a trace config's callbacks run where aiohttp chooses), and
covers sessions made before instrumentation. The caller's headers are never changed: the ones
sent are a copy. The span ends when ``_request`` returns, once the response's headers are in
(the body is read afterwards, by the app); ``raise_for_status`` errors keep their status code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telemetry_run._version import __version__
from telemetry_run.instrumentors._http_client import client_site, record_response
from telemetry_run.instrumentors.base import Instrumentor, _report, guard
from telemetry_run.sdk.trace.api import INVALID_SPAN

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import Call, CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["AiohttpClientInstrumentor"]


def _url(session: Any, str_or_url: Any, params: Any) -> str:
    """The URL ``_request`` will ask for: the session's ``base_url`` and ``params`` applied."""
    url = session._build_url(str_or_url)
    if params:
        url = url.extend_query(params)
    return str(url)


class AiohttpClientInstrumentor(Instrumentor):
    """Patches ``aiohttp.ClientSession._request``."""

    site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import aiohttp
        import multidict

        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.site = client_site(tracer, "aiohttp_client", config)
        self._headers_type = multidict.CIMultiDict
        self._response_error = aiohttp.ClientResponseError
        self.patcher.wrap(aiohttp, "ClientSession._request", self._request)

    async def _request(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        if not self.enabled():
            return await wrapped(*args, **kwargs)
        # Not ``guard`` on the steps every request takes: a try costs nothing, a guard three
        # calls. The except clauses are guard's (Exception only, reported, swallowed).
        try:
            method = args[0] if args else kwargs["method"]
            str_or_url = args[1] if len(args) > 1 else kwargs["str_or_url"]
            given = kwargs.get("headers")
            headers = self._headers_type() if given is None else self._headers_type(given)
            url = _url(instance, str_or_url, kwargs.get("params"))
            bound = (str(method).upper(), url, headers)
        except Exception as exc:  # noqa: BLE001  # reported; the call as it was made
            _report("aiohttp_client: before request", exc)
            return await wrapped(*args, **kwargs)
        with self.site.call(*bound) as call:
            try:
                response = await wrapped(*args, **{**kwargs, "headers": bound[2]})
            except self._response_error as exc:  # raise_for_status: the response's code
                with guard("aiohttp_client: response"):
                    call.set_status_code(int(exc.status))
                raise
            if call.span is not INVALID_SPAN:  # a traced call
                try:  # not ``guard``: every response comes here
                    _response(call, response)
                except Exception as exc:  # noqa: BLE001  # reported; the response goes on
                    _report("aiohttp_client: response", exc)
        return response


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
