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

__all__ = ["VERSIONS", "client_site", "keeps_no_secret", "record_response"]

#: ``network.protocol.version`` of the integer versions http.client and urllib3 report.
VERSIONS: Final = {10: "1.0", 11: "1.1", 20: "2", 30: "3"}


def _span_name(attributes: Mapping[str, Any], method: str, *_: Any) -> str:
    # ``_http.client_span_name``: the attribute is a known method or ``_OTHER``.
    method = attributes["http.request.method"]
    return "HTTP" if method == "_OTHER" else method


def _carrier(method: str, url: str, carrier: Any, *_: Any) -> Any:
    return carrier


def _header_items(method: str, url: str, carrier: Any) -> Iterable[tuple[str, str]]:
    return carrier.items()  # type: ignore[no-any-return]


def _header_items_apart(
    method: str, url: str, carrier: Mapping[str, str], headers: Any
) -> Iterable[tuple[str, str]]:
    """The request's headers (a mapping, or pairs as aiohttp takes them), then the context's,
    as the copy sends them."""
    items = headers.items() if hasattr(headers, "items") else headers
    return [*items, *carrier.items()]


#: A site remembers the attributes of this many (method, URL) pairs, URLs of at most
#: ``_URL_LONGEST`` characters with nothing to redact (emptied when full): a service calls the
#: same URLs again and again. A URL holding a secret is described each time, never kept.
_ATTRIBUTES_KEPT: Final = 128
_URL_LONGEST: Final = 512


def keeps_no_secret(text: str) -> bool:
    """Whether a URL text may be remembered: no userinfo, and no query value redaction would
    replace (the query checked only when there is one)."""
    return "@" not in text and ("?" not in text or _http.redact_url(text) == text)


def _remembered_attributes() -> Callable[..., dict[str, Any]]:
    """``_http.client_request_attributes``, remembered per (method, URL) for one site."""
    remembered: dict[tuple[str, str], dict[str, Any]] = {}
    describe = _http.client_request_attributes

    def attributes(method: str, url: str, *_: Any) -> dict[str, Any]:
        key = (method, url)
        found = remembered.get(key)
        if found is None:
            found = describe(method, url)
            # Never kept: a long URL, or one with a secret (what redaction changed).
            if len(url) > _URL_LONGEST or found["url.full"] != url:
                return found
            if len(remembered) >= _ATTRIBUTES_KEPT:
                remembered.clear()  # atomic under threads, where evicting one key is not
            remembered[key] = found
        return found.copy()  # the span's own: it adds to them

    attributes.remembered = remembered  # type: ignore[attr-defined]  # for the tests to look at
    return attributes


def client_site(
    tracer: Tracer,
    name: str,
    config: Config | None,
    *,
    enabled: Callable[[], bool] | None = None,
    apart: bool = False,
) -> CallSite:
    """The site of ``name``'s requests, each called as ``site.call(method, url, headers)``.

    ``url`` is the absolute URL asked for (matched by the excluded-URL patterns, recorded
    redacted as ``url.full``); ``headers`` the copy that is sent: the trace context is injected
    into it, and its pairs are captured when configured. ``enabled``: the instrumentor's gate,
    or None when the wrapper checks it first, before it copies anything. With ``apart`` the
    site is called as ``site.call(method, url, carrier, headers)``: the context is injected
    into the dict ``carrier`` (for the wrapper to copy the request with, when it is not empty)
    and the request's own ``headers`` are captured.
    """
    settings = _http.HttpSettings.from_config(config, name, server=False)
    excluded: Callable[..., bool] | None = None
    if settings.excludes():

        def excluded(method: str, url: str, *_: Any) -> bool:
            return settings.is_excluded(url)

    return client_call(
        tracer,
        name,
        attributes=_remembered_attributes(),  # (method, url, ...): the rest unread
        span_name=_span_name,
        carrier=_carrier,
        rules=HTTP_CLIENT,
        metric="http.client.request.duration",
        settings=settings,
        excluded=excluded,
        request_headers=_header_items_apart if apart else _header_items,
        enabled=enabled,
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
