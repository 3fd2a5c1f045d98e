"""httpx: one CLIENT span per ``Client.send`` / ``AsyncClient.send``, the trace context injected.

``send`` is where every request of a client passes (``client.get``, ``httpx.get``, a request
built by hand, ``client.stream``). It follows redirects and authentication rounds itself, so
the span is the logical call: ``url.full`` is the URL asked for, ``http.request.resend_count``
the redirect hops, and every hop carries the span's context (httpx copies the headers). As
with requests, the caller's request is never changed: the one sent is a shallow copy with its
own headers, swapped back wherever httpx hands it out (``response.request``, the history's, an
exception's). A streamed response (``stream=True``, ``client.stream(...)``) ends its span when
it is closed (read to the end, ``close()``/``aclose()``, the ``with`` block left) or collected,
so the span covers the body's transfer and records an error raised while reading it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from telemetry_run._version import __version__
from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors._http_client import client_site, record_response
from telemetry_run.instrumentors.base import Instrumentor, _report, guard
from telemetry_run.sdk.trace.api import INVALID_SPAN

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.toolkit import Call, CallSite
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["HttpxInstrumentor"]

#: ``network.protocol.version`` of what httpx reports, without parsing it per request.
_VERSIONS: Final = {"HTTP/1.1": "1.1", "HTTP/2": "2", "HTTP/1.0": "1.0"}


class HttpxInstrumentor(Instrumentor):
    """Patches ``httpx.Client.send`` and ``httpx.AsyncClient.send``."""

    site: CallSite

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        import httpx

        tracer = tracer_provider.get_tracer(__name__, __version__)
        self.site = client_site(tracer, "httpx", config)
        self._streams = _stream_classes(httpx)
        self.patcher.wrap(httpx, "Client.send", self._send)
        self.patcher.wrap(httpx, "AsyncClient.send", self._async_send)

    def _copy(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
        """The caller's request, the copy to send and ``site.call``'s arguments for it (the
        last two None when the copy failed)."""
        request: Any = None
        try:  # not ``guard``: this runs for every request, and a try costs nothing
            request = args[0] if args else kwargs["request"]
            # The caller's request and headers stay as they were. Not ``copy.copy``: httpx's
            # pickling state swaps the body for a closed stream.
            sent = object.__new__(type(request))
            sent.__dict__.update(request.__dict__)
            sent.headers = headers = request.headers.copy()
            return request, sent, (str(sent.method), str(sent.url), headers)
        except Exception as exc:  # noqa: BLE001  # reported; the request goes on untraced
            _report("httpx: before send", exc)
        return request, None, None

    def _send(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        if not self.enabled():
            return wrapped(*args, **kwargs)
        request, sent, bound = self._copy(args, kwargs)
        if sent is None:
            return wrapped(*args, **kwargs)
        call_args, call_kwargs = _with_request(sent, args, kwargs)
        with self.site.call(*bound) as call:
            try:
                response = wrapped(*call_args, **call_kwargs)
            except BaseException as exc:
                with guard("httpx: restore the request"):
                    _give_back(request, sent, exc)
                raise
            self._response(call, request, sent, response, kwargs.get("stream", False), False)
        return response

    async def _async_send(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        if not self.enabled():
            return await wrapped(*args, **kwargs)
        request, sent, bound = self._copy(args, kwargs)
        if sent is None:
            return await wrapped(*args, **kwargs)
        call_args, call_kwargs = _with_request(sent, args, kwargs)
        with self.site.call(*bound) as call:
            try:
                response = await wrapped(*call_args, **call_kwargs)
            except BaseException as exc:
                with guard("httpx: restore the request"):
                    _give_back(request, sent, exc)
                raise
            self._response(call, request, sent, response, kwargs.get("stream", False), True)
        return response

    def _response(
        self, call: Call, request: Any, sent: Any, response: Any, stream: Any, is_async: bool
    ) -> None:
        try:  # not ``guard``: this runs for every request, and a try costs nothing
            _give_back(request, sent, None, response)
            if call.span is INVALID_SPAN:  # not traced: nothing to record
                return
            http_version = response.http_version
            version = _VERSIONS.get(http_version) or _http.protocol_version(http_version)
            resends = len(response.history)
            record_response(call, int(response.status_code), version, resends, response.headers)
        except Exception as exc:  # noqa: BLE001  # reported; the response goes to the app
            _report("httpx: response", exc)
        if stream and not response.is_closed and call.span is not INVALID_SPAN:
            with guard("httpx: streamed response"):
                sync_class, async_class = self._streams
                body = response.stream
                # By the client, not the body: a body may be both (httpx.ByteStream).
                wrapper = async_class if is_async else sync_class
                response.stream = wrapper(body, call)
                call.defer_end()  # the body's stream ends the span when it is closed


def _with_request(
    sent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if args:
        return (sent, *args[1:]), kwargs
    return args, {**kwargs, "request": sent}


def _give_back(request: Any, sent: Any, exc: BaseException | None, response: Any = None) -> None:
    """Put the caller's ``request`` back wherever httpx recorded our copy ``sent``."""
    if exc is not None and getattr(exc, "_request", None) is sent:
        exc._request = request  # type: ignore[attr-defined]  # RequestError.request's field
    if response is None:
        return
    for each in (response, *(getattr(response, "history", None) or ())):
        if getattr(each, "_request", None) is sent:
            each.request = request


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
