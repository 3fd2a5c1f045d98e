"""httpx: one CLIENT span per ``Client.send`` / ``AsyncClient.send``, the trace context injected.

``send`` is where every request of a client passes (``client.get``, ``httpx.get``, a request
built by hand, ``client.stream``). It follows redirects and authentication rounds itself, so the
span is the logical call: ``url.full`` is the URL asked for, ``http.request.resend_count`` the
redirect hops, and every hop carries the span's context (httpx copies the headers). As with
requests, the caller's request is never changed: the context is written into a dict first, and
when there is one to carry the request sent is a shallow copy with its own headers, swapped back
wherever httpx hands it out (``response.request``, the history's, an exception's); a call that
carries nothing (suppressed, excluded, no propagator) sends the caller's request itself. A
streamed response (``stream=True``, ``client.stream(...)``) ends its span when it is closed
(read to the end, ``close()``/``aclose()``, the ``with`` block left) or collected, so the span
covers the body's transfer and records an error raised while reading it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors._http_client import (
    client_site,
    keeps_no_secret,
    record_response,
)
from telemetry_run.instrumentors.base import Instrumentor, _report, guard
from telemetry_run.sdk.trace.api import INVALID_SPAN

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import Call, CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["HttpxInstrumentor"]

#: ``network.protocol.version`` of the ``http_version`` extension of an httpx response (bytes,
#: as the transports set it), without parsing it per request.
_RAW_VERSIONS: Final = {b"HTTP/1.1": "1.1", b"HTTP/2": "2", b"HTTP/1.0": "1.0"}


class HttpxInstrumentor(Instrumentor):
    """Puts traced ``send`` functions in place of ``httpx.Client.send`` and ``AsyncClient.send``."""

    site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import httpx

        tracer = tracer_provider.get_tracer(__name__, __version__)
        # The site's gate is ours (evaluated in C by the native start), and the context is
        # injected into a dict first: a call that is not traced copies nothing.
        self.site = client_site(tracer, "httpx", config, enabled=self.enabled, apart=True)
        self._streams = _stream_classes(httpx)
        # Every request passes here: plain functions, no wrapt proxy (``Patcher.replace``).
        self.patcher.replace(httpx.Client, "send", self._traced_send)
        self.patcher.replace(httpx.AsyncClient, "send", self._traced_async_send)

    def _traced_send(self, original: Callable[..., Any]) -> Callable[..., Any]:
        site, received = self.site, self._received
        start, untraced = site.start, site.untraced

        @functools.wraps(original)
        def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            carrier: dict[str, str] = {}
            try:  # not ``guard``: this runs for every request, and a try costs nothing
                url = _url_text(request.url)
                call = start(str(request.method), url, carrier, request.headers) or untraced
            except Exception as exc:  # noqa: BLE001  # reported; the request goes on untraced
                _report("httpx: before send", exc)
                return original(client, request, *args, **kwargs)
            sent = _with_context(request, carrier) if carrier else request
            if call is untraced and sent is request:  # not traced, nothing to carry
                return original(client, request, *args, **kwargs)
            with call:
                try:
                    response = original(client, sent, *args, **kwargs)
                except BaseException as exc:
                    if sent is not request:
                        _give_back_error(request, sent, exc)
                    raise
                received(call, request, sent, response, kwargs.get("stream", False), False)
            return response

        return send

    def _traced_async_send(self, original: Callable[..., Any]) -> Callable[..., Any]:
        site, received = self.site, self._received
        start, untraced = site.start, site.untraced

        @functools.wraps(original)
        async def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            carrier: dict[str, str] = {}
            try:  # not ``guard``: this runs for every request, and a try costs nothing
                url = _url_text(request.url)
                call = start(str(request.method), url, carrier, request.headers) or untraced
            except Exception as exc:  # noqa: BLE001  # reported; the request goes on untraced
                _report("httpx: before send", exc)
                return await original(client, request, *args, **kwargs)
            sent = _with_context(request, carrier) if carrier else request
            if call is untraced and sent is request:  # not traced, nothing to carry
                return await original(client, request, *args, **kwargs)
            with call:
                try:
                    response = await original(client, sent, *args, **kwargs)
                except BaseException as exc:
                    if sent is not request:
                        _give_back_error(request, sent, exc)
                    raise
                received(call, request, sent, response, kwargs.get("stream", False), True)
            return response

        return send

    def _received(
        self, call: Call, request: Any, sent: Any, response: Any, stream: Any, is_async: bool
    ) -> None:
        """The response of a call sent: the caller's request given back, the span's attributes,
        and a streamed body wrapped to end the span when it is closed."""
        try:  # not ``guard``: this runs for every request, and a try costs nothing
            history = response.history
            if sent is not request:
                for each in (response, *history) if history else (response,):
                    if getattr(each, "_request", None) is sent:
                        each.request = request
            if call.span is INVALID_SPAN:  # not traced (nested in another client call)
                return
            version = _RAW_VERSIONS.get(response.extensions.get("http_version", b"HTTP/1.1"))
            if version is None:
                version = _http.protocol_version(response.http_version)
            record_response(call, response.status_code, version, len(history), response.headers)
        except Exception as exc:  # noqa: BLE001  # reported; the response goes to the app
            _report("httpx: response", exc)
            return
        if stream and not response.is_closed:
            with guard("httpx: streamed response"):
                sync_class, async_class = self._streams
                body = response.stream
                # By the client, not the body: a body may be both (httpx.ByteStream).
                wrapper = async_class if is_async else sync_class
                response.stream = wrapper(body, call)
                call.defer_end()  # the body's stream ends the span when it is closed


#: The URL text of a request, by its parsed URL's fields: a service sends the same URLs again
#: and again, and ``str(url)`` assembles the text in Python each time (up to this many URLs of
#: at most ``_URL_TEXT_LONGEST`` characters are remembered, never one holding a secret; the dict
#: is emptied when full).
_URL_TEXTS_KEPT: Final = 128
_URL_TEXT_LONGEST: Final = 512
_url_texts: dict[Any, str] = {}


def _url_text(url: Any) -> str:
    """``str(url)``, remembered by the fields of httpx's parsed URL (immutable, hashable)."""
    fields = getattr(url, "_uri_reference", None)
    try:
        text = _url_texts.get(fields)
    except TypeError:  # not hashable: an httpx we do not know
        return str(url)
    if text is None:
        text = str(url)
        if fields is not None and len(text) <= _URL_TEXT_LONGEST and keeps_no_secret(text):
            if len(_url_texts) >= _URL_TEXTS_KEPT:
                _url_texts.clear()  # atomic under threads, where evicting one key is not
            _url_texts[fields] = text
    return text


def _with_context(request: Any, carrier: dict[str, str]) -> Any:
    """A copy of ``request`` sending the ``carrier``'s headers too (the caller's request when the
    copy fails: it then goes without the context, reported)."""
    try:
        # The caller's request and headers stay as they were. Not ``copy.copy``: httpx's
        # pickling state swaps the body for a closed stream.
        sent = object.__new__(type(request))
        sent.__dict__.update(request.__dict__)
        sent.headers = headers = request.headers.copy()
        for name, value in carrier.items():
            headers[name] = value
    except Exception as exc:  # noqa: BLE001  # reported; the request goes without the context
        _report("httpx: before send", exc)
        return request
    return sent


def _give_back_error(request: Any, sent: Any, exc: BaseException) -> None:
    """An exception that names our copy ``sent`` (``RequestError.request``) names the caller's."""
    with guard("httpx: restore the request"):
        if getattr(exc, "_request", None) is sent:
            exc._request = request  # type: ignore[attr-defined]  # RequestError.request's field


def _stream_classes(httpx: Any) -> tuple[type[Any], type[Any]]:
    """Body streams that end their call when closed, subclasses of httpx's own (which it checks).

    Made at ``instrument()``, after httpx is imported: this module imports nothing of httpx.
    """

    class TracedStream(httpx.SyncByteStream):  # type: ignore[misc]
        """A streamed body: its close (or collection) ends the call's span."""

        def __init__(self, body: Any, call: Call) -> None:
            self._body = body
            self._call = call

        def __iter__(self) -> Iterator[bytes]:
            try:
                yield from self._body
            except BaseException as exc:
                _stream_failed(self._call, exc)
                raise

        def close(self) -> None:
            try:
                self._body.close()
            finally:
                _stream_closed(self._call)

        def __del__(self) -> None:
            _stream_closed(self._call)

    class TracedAsyncStream(httpx.AsyncByteStream):  # type: ignore[misc]
        """A streamed async body: its close (or collection) ends the call's span."""

        def __init__(self, body: Any, call: Call) -> None:
            self._body = body
            self._call = call

        async def __aiter__(self) -> Any:
            try:
                async for chunk in self._body:
                    yield chunk
            except BaseException as exc:
                _stream_failed(self._call, exc)
                raise

        async def aclose(self) -> None:
            try:
                await self._body.aclose()
            finally:
                _stream_closed(self._call)

        def __del__(self) -> None:
            _stream_closed(self._call)

    return TracedStream, TracedAsyncStream


def _stream_failed(call: Call, exc: BaseException) -> None:
    """An error while reading the body (a timeout, a dropped connection): recorded, ended."""
    with guard("httpx: streamed response"):
        call.record_exception(exc)
        call.end()


def _stream_closed(call: Call) -> None:
    if not call.ended:
        with guard("httpx: streamed response"):
            call.end()
