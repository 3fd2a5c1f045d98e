"""urllib3: one CLIENT span per logical ``urlopen``, the trace context injected.

Two patch points, one layer: ``PoolManager.urlopen`` (``urllib3.request``, a ``PoolManager``,
a ``ProxyManager``) and ``HTTPConnectionPool.urlopen`` (a pool used directly, HTTPS too). A
``PoolManager`` call goes through a pool's, and both follow redirects and retries by calling
themselves again; every call made inside another of the HTTP layer (those, or a requests call
over urllib3) makes no span and only carries the outer span's context, so each logical call is
one span: ``url.full`` the URL asked for, ``http.request.resend_count`` the retries and
redirects urllib3 recorded. The caller's headers are never changed: the ones sent are a copy.

The span ends when ``urlopen`` returns, that is once the response's headers are in; with
``preload_content=False`` the body is read afterwards, outside the span.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors._http_client import VERSIONS, client_site, record_response
from telemetry_run.instrumentors.base import Instrumentor, _report
from telemetry_run.sdk.context import get_value
from telemetry_run.sdk.trace.api import INVALID_SPAN

if TYPE_CHECKING:
    from collections.abc import Callable

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import Call, CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["Urllib3Instrumentor"]

_POOL_HEADERS_AT: Final = 3  # HTTPConnectionPool.urlopen(method, url, body, headers, ...)


def _carried(headers: Any) -> bool:
    """True inside another HTTP client call whose context ``headers`` carry already: the
    headers it injected, handed down (a manager's to its pool, requests' to urllib3, a redirect
    or retry hop). Such a call makes no span and has nothing to inject: it is passed through.
    Headers without a ``traceparent`` (another propagator, or a call whose outer call did not
    inject into them) take the usual path, which injects the outer call's context."""
    return (
        headers is not None
        and get_value(_http.CLIENT_SPAN_KEY) is not None
        and "traceparent" in headers
    )


def _copy(headers: Any) -> Any:
    """The headers to send: a copy of the caller's, of the same kind where it can copy itself."""
    if headers is None:
        return {}
    copy = getattr(headers, "copy", None)
    return copy() if copy is not None else dict(headers)


def _pool_url(pool: Any, url: str) -> str:
    """The absolute URL a pool's ``urlopen`` asks for (its ``url`` is a path, except via proxy)."""
    if "://" in url:
        return url
    scheme = str(pool.scheme)
    host = str(pool.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = pool.port
    default = _http.DEFAULT_PORTS.get(scheme)
    authority = host if port is None or port == default else f"{host}:{port}"
    return f"{scheme}://{authority}{url}"


class Urllib3Instrumentor(Instrumentor):
    """Patches ``PoolManager.urlopen`` and ``HTTPConnectionPool.urlopen``."""

    site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import urllib3.connectionpool
        import urllib3.poolmanager

        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.site = client_site(tracer, "urllib3", config)
        self.patcher.wrap(urllib3.poolmanager, "PoolManager.urlopen", self._manager_urlopen)
        self.patcher.wrap(urllib3.connectionpool, "HTTPConnectionPool.urlopen", self._pool_urlopen)

    def _manager_urlopen(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        bound: tuple[Any, ...] | None = None
        try:  # not ``guard``: this runs for every request, and a try costs nothing
            given = kwargs.get("headers")
            if not _carried(given):  # else a redirect hop of a traced call: passed through
                method, url = _method_and_url(args, kwargs)
                headers = _copy(instance.headers if given is None else given)
                bound = (str(method), str(url), headers, args, {**kwargs, "headers": headers})
        except Exception as exc:  # noqa: BLE001  # reported; the request goes on untraced
            _report("urllib3: before urlopen", exc)
        return self._urlopen(wrapped, args, kwargs, bound)

    def _pool_urlopen(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        bound: tuple[Any, ...] | None = None
        try:  # not ``guard``: this runs for every request, and a try costs nothing
            given = (
                args[_POOL_HEADERS_AT] if len(args) > _POOL_HEADERS_AT else kwargs.get("headers")
            )
            if not _carried(given):  # else under the manager's call or requests': passed through
                bound = _pool_bound(instance, args, kwargs, given)
        except Exception as exc:  # noqa: BLE001  # reported; the request goes on untraced
            _report("urllib3: before urlopen", exc)
        return self._urlopen(wrapped, args, kwargs, bound)

    def _urlopen(
        self,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        bound: tuple[Any, ...] | None,
    ) -> Any:
        if bound is None:  # carried already, or a step of ours failed: the call as it was made
            return wrapped(*args, **kwargs)
        method, url, headers, call_args, call_kwargs = bound
        with self.site.call(method, url, headers) as call:
            response = wrapped(*call_args, **call_kwargs)
            if call.span is not INVALID_SPAN:  # a traced call (not one nested in another)
                try:  # not ``guard``: this runs for every request, and a try costs nothing
                    _response(call, response)
                except Exception as exc:  # noqa: BLE001  # reported; the response goes to the app
                    _report("urllib3: response", exc)
        return response


def _pool_bound(
    pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any], given: Any
) -> tuple[Any, ...]:
    """A pool's ``urlopen``: method, full URL, the headers to send (a copy of ``given``, else
    of the pool's), and the arguments that send them."""
    method, url = _method_and_url(args, kwargs)
    headers = _copy(pool.headers if given is None else given)
    if len(args) > _POOL_HEADERS_AT:
        call_args = (*args[:_POOL_HEADERS_AT], headers, *args[_POOL_HEADERS_AT + 1 :])
        call_kwargs = kwargs
    else:
        call_args, call_kwargs = args, {**kwargs, "headers": headers}
    return (str(method), _pool_url(pool, str(url)), headers, call_args, call_kwargs)


def _method_and_url(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    method = args[0] if args else kwargs["method"]
    url = args[1] if len(args) > 1 else kwargs["url"]
    return method, url


def _response(call: Call, response: Any) -> None:
    retries = getattr(response, "retries", None)
    resends = len(getattr(retries, "history", None) or ())
    version = VERSIONS.get(getattr(response, "version", None) or 0)
    record_response(call, int(response.status), version, resends, response.headers)
