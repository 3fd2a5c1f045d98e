"""The HTTP client instrumentors' site: what requests, httpx, urllib3 and aiohttp share.

Every HTTP client call is described by the same three things, whatever the library: the method,
the absolute URL asked for and the (mutable, already copied) headers the request will be sent
with. ``client_site`` builds the toolkit's ``CallSite`` for them once, from the configuration
(excluded URLs, header capture); ``record_response`` records what every client learns from a
response. A library module keeps only what is its own: where it patches, how it copies the
caller's request and how it reads its response's version and redirect count.

    site = client_site(tracer, "httpx", config)
    with site.call(method, url, headers) as call:
        response = send(...)
        record_response(call, response.status_code, "1.1", len(response.history), response.headers)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors.toolkit import HTTP_CLIENT, client_call
from telemetry_run.sdk.trace.api import INVALID_SPAN

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import Call, CallSite
    from telemetry_run.sdk.trace.api import Tracer

__all__ = ["VERSIONS", "client_site", "record_response"]

#: ``network.protocol.version`` of the integer versions http.client and urllib3 report.
VERSIONS: Final = {10: "1.0", 11: "1.1", 20: "2", 30: "3"}


def _span_name(attributes: Mapping[str, Any], method: str, url: str, headers: Any) -> str:
    # ``_http.client_span_name``: the attribute is a known method or ``_OTHER``.
    method = attributes["http.request.method"]
    return "HTTP" if method == "_OTHER" else method


def _carrier(method: str, url: str, headers: Any) -> Any:
    return headers


def _header_items(method: str, url: str, headers: Any) -> Iterable[tuple[str, str]]:
    return headers.items()  # type: ignore[no-any-return]


def client_site(tracer: Tracer, name: str, config: Config | None) -> CallSite:
    """The site of ``name``'s requests, each called as ``site.call(method, url, headers)``.

    ``url`` is the absolute URL asked for (matched by the excluded-URL patterns, recorded
    redacted as ``url.full``); ``headers`` the copy that is sent: the trace context is injected
    into it, and its pairs are captured when configured. The site has no gate of its own: the
    wrapper checks its instrumentor's ``enabled`` first, before it copies anything.
    """
    settings = _http.HttpSettings.from_config(config, name, server=False)
    excluded: Callable[[str, str, Any], bool] | None = None
    if settings.excludes():

        def excluded(method: str, url: str, headers: Any) -> bool:
            return settings.is_excluded(url)

    return client_call(
        tracer,
        name,
        attributes=_http.client_request_attributes,  # (method, url, headers): headers unread
        span_name=_span_name,
        carrier=_carrier,
        rules=HTTP_CLIENT,
        metric="http.client.request.duration",
        settings=settings,
        excluded=excluded,
        request_headers=_header_items,
        enabled=None,
    )


def record_response(
    call: Call, status_code: int, version: str | None, resends: int, headers: Any
) -> None:
    """A response: its status (4xx and 5xx are errors), ``network.protocol.version``,
    ``http.request.resend_count`` (redirects and retries followed, when any) and the
    allow-listed response headers (``headers.items()`` is read only when some are)."""
    span = call.span
    if span is INVALID_SPAN:  # not traced (nested in another client call): nothing to record
        return
    call.set_status_code(status_code)
    if version:
        span.set_attribute("network.protocol.version", version)
    if resends:
        span.set_attribute("http.request.resend_count", resends)
    settings = call.site.settings
    if settings is not None and settings.response_headers is not None:
        call.capture_response_headers(headers.items())
