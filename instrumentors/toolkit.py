"""The instrumentor author's toolkit: one CLIENT or SERVER span per call, the sequence in one place.

Every client and server instrumentor does the same things around the library's call: decide
whether to trace (the gate, suppression, the excluded URLs), start the span with the
conventions' attributes, inject or extract the trace context (traceparent, tracestate, baggage:
whatever ``OTEL_PROPAGATORS`` configures), attach it, capture the allow-listed headers, record
an exception (scrubbed by the SDK's span), set the status from the protocol's code, end, detach.
``client_call`` and ``server_call`` build a ``CallSite`` once per patch point that owns it::

    site = client_call(tracer, "requests", attributes=request_attributes,
                       span_name=lambda attributes, request: attributes["http.request.method"],
                       carrier=lambda request: request.headers, rules=HTTP_CLIENT,
                       enabled=instrumentor.enabled)

    with site.call(request) as call:              # a context manager
        response = send(request)
        call.set_status_code(response.status_code)

    @site                                         # or a decorator: sync, async,
    def send(request): ...                        # generator and async generator

    responses = site.stream(site.start(request), responses)   # or a stream that ends the span

The arguments of ``call``, ``start`` and the decorated function are handed to the site's
callables (``attributes``, ``span_name`` after the attributes, ``carrier``, ``excluded``,
``request_headers``) as they are. ``StatusRules`` say how a protocol's codes and exceptions
become the span's status (``HTTP_SERVER``, ``HTTP_CLIENT``, ``RPC_SERVER``, ``RPC_CLIENT``,
``PLAIN``); a ``Call`` is what an instrumentor tells about the call once it started
(``set_status_code``, ``capture_response_headers``, ``record_exception``, ``stream``).

Guarantees: every step of ours is guarded (``base.guard``: reported once per place through the
SDK's diagnostics), so a bug of ours costs a span, never the call; the application's exception
propagates unchanged, with its traceback. A client call made inside another client call of the
same ``layer`` (requests over urllib3, a redirect hop) makes no span of its own: the outer call
is the one logical call, and the inner one only carries its context. Streams end their call
when exhausted, when they raise, when closed (``close()``/``aclose()``) or garbage collected.

``CALL_END_HOOKS`` run after each traced call ended, sampled or not: a site made with ``metric``
(the conventions' duration histogram it feeds) installs ``_call_metrics``' recorder there.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, TypedDict, TypeVar, Unpack

from telemetry_run.instrumentors import _http, _rpc
from telemetry_run.instrumentors import base as _base
from telemetry_run.instrumentors.base import _report, guard
from telemetry_run.sdk._native import speedups
from telemetry_run.sdk.baggage import _BAGGAGE_KEY
from telemetry_run.sdk.context import _CURRENT as _current_context
from telemetry_run.sdk.context import _SPAN as _current_span
from telemetry_run.sdk.context import SPAN_KEY as _SPAN_KEY
from telemetry_run.sdk.context import (
    Context,
    attach,
    detach,
    get_current,
    get_value,
)
from telemetry_run.sdk.context import Token as _Token  # start attaches in its own frame
from telemetry_run.sdk.context import detach_failed as _detach_failed
from telemetry_run.sdk.context import is_suppressed as _is_suppressed
from telemetry_run.sdk.propagation import WSGIEnvironGetter, _textmap, extract, inject
from telemetry_run.sdk.propagation import default_getter as _default_getter
from telemetry_run.sdk.propagation import default_setter as _default_setter
from telemetry_run.sdk.propagation.tracecontext import inject_started as _inject_started
from telemetry_run.sdk.trace.api import INVALID_SPAN, SpanKind, StatusCode
from telemetry_run.sdk.trace.provider import _native_starter

if TYPE_CHECKING:
    from types import TracebackType

    from telemetry_run.sdk.context import Token
    from telemetry_run.sdk.propagation import Getter, Setter
    from telemetry_run.sdk.trace.api import Span, Tracer

__all__ = [
    "CALL_END_HOOKS",
    "HTTP_CLIENT",
    "HTTP_SERVER",
    "PLAIN",
    "RPC_CLIENT",
    "RPC_SERVER",
    "Call",
    "CallSite",
    "SiteOptions",
    "StatusRules",
    "client_call",
    "server_call",
]

F = TypeVar("F", bound=Callable[..., Any])

_dict_setitem: Final = dict.__setitem__  # how the SDK fills a fresh Context

#: Called with each traced ``Call`` just after its span ended, in order, whether the span was
#: sampled or not (a sampled-out span has no times: ``Call.started`` has the call's start). The
#: first site made with a ``metric`` appends the duration recorder (``_call_metrics``). A hook
#: that raises is reported once and the others still run.
CALL_END_HOOKS: Final[list[Callable[[Call], None]]] = []


def _exception_status(span: Span, exc: BaseException, has_code: bool) -> None:
    """The rule without a protocol: the exception recorded, its class as ``error.type``."""
    span.record_exception(exc, escaped=True)
    if not has_code:
        span.set_attribute("error.type", _http.exception_type(exc))
    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")


class StatusRules:
    """How a protocol turns a response code and an escaping exception into the span's status.

    ``code(span, code, details)`` sets the code's attribute and, when the rule says so, the
    ERROR status; ``exception(span, exc, has_code)`` records the exception (``has_code``: a
    response code was set already, which then is the ``error.type``).
    """

    __slots__ = ("code", "exception")

    def __init__(
        self,
        code: Callable[[Span, Any, str | None], None],
        exception: Callable[[Span, BaseException, bool], None] = _exception_status,
    ) -> None:
        self.code = code
        self.exception = exception


def _no_code(span: Span, code: Any, details: str | None) -> None:
    return None


def _rpc_client_exception(span: Span, exc: BaseException, has_code: bool) -> None:
    _rpc.client_exception(span, exc)


def _rpc_server_exception(span: Span, exc: BaseException, has_code: bool) -> None:
    _rpc.server_exception(span, exc)


#: No codes (messaging, a library call): an escaping exception is the only error.
PLAIN: Final = StatusRules(_no_code)
#: HTTP server: 5xx is an error, 4xx is the client's (``http.response.status_code``).
HTTP_SERVER: Final = StatusRules(_http.server_status_attributes)
#: HTTP client: 4xx and 5xx are errors.
HTTP_CLIENT: Final = StatusRules(_http.client_status)
#: gRPC client: every code but OK is an error (``rpc.grpc.status_code``).
RPC_CLIENT: Final = StatusRules(_rpc.client_end, _rpc_client_exception)
#: gRPC server: only the server's faults are errors (``_rpc.SERVER_ERROR_CODES``).
RPC_SERVER: Final = StatusRules(_rpc.server_end, _rpc_server_exception)


def _is_cancelled(exc: BaseException) -> bool:
    """An asyncio cancellation (the peer went away): no error of the application's.

    Looked up, not imported: an application that never imported asyncio has none. And looked
    up where it is defined, tolerating a module half imported: another thread may be importing
    asyncio right now, and then ``sys.modules["asyncio"]`` has no ``CancelledError`` yet.
    """
    cancelled = getattr(sys.modules.get("asyncio.exceptions"), "CancelledError", None)
    return cancelled is not None and isinstance(exc, cancelled)


class Call:
    """One traced call: its span, the context that holds the span, and what was learnt.

    Used as a context manager it is attached on entry (unless attached already) and, on exit,
    records an escaping exception (a cancellation is not an error), ends the span (unless
    ``defer_end()`` handed that to a stream or a callback) and detaches. Each method may be
    called from an instrumentor inside ``guard``; ``end`` and ``record_exception`` act once.
    """

    __slots__ = (
        "_deferred",
        "_ended",
        "_token",
        "attributes",
        "context",
        "exception",
        "exception_recorded",
        "route",
        "site",
        "span",
        "started",
        "status_code",
    )

    def __init__(
        self, site: CallSite, span: Span, context: Context, attributes: Mapping[str, Any]
    ) -> None:
        self.site = site
        self.span = span
        self.context = context
        #: The attributes the span started with (what the conventions' builder gave).
        self.attributes = attributes
        self.status_code: Any = None
        self.exception_recorded = False
        #: The exception recorded, until the end hooks saw it (its class is ``error.type``).
        self.exception: BaseException | None = None
        #: The route template a server learnt (``http.route``), kept for the duration metric.
        self.route: str | None = None
        #: ``perf_counter()`` at the start: the duration of every call, sampled or not.
        self.started = perf_counter()
        self._token: Token | None = None
        self._ended = False
        self._deferred = False

    # -- what the instrumentor learns during the call ------------------------------------

    def set_status_code(self, code: Any, details: str | None = None) -> None:
        """The protocol's response code, judged by the site's ``StatusRules``."""
        self.status_code = code
        self.site.rules.code(self.span, code, details)

    def capture_response_headers(self, headers: Iterable[tuple[str, str]]) -> None:
        """``http.response.header.*`` for the allow-listed names (the site's ``settings``)."""
        settings = self.site.settings
        pattern = settings.response_headers if settings is not None else None
        if pattern is not None and settings is not None and self.span.is_recording():
            self.span.set_attributes(settings.captured("http.response.header.", pattern, headers))

    def record_exception(self, exc: BaseException) -> None:
        """An exception that escaped the call: an ``exception`` event and the status, once."""
        if self.exception_recorded:
            return
        self.exception_recorded = True
        if not self._ended:
            self.exception = exc
        self.site.rules.exception(self.span, exc, self.status_code is not None)

    # -- the end ------------------------------------------------------------------------

    def attach(self) -> None:
        """Make the call's context current (in the frame that will ``detach``)."""
        if self._token is None:
            self._token = attach(self.context)

    def detach(self) -> None:
        """Leave the call's context; idempotent (a foreign detach is tolerated by the SDK)."""
        token, self._token = self._token, None
        if token is not None:
            detach(token)

    def defer_end(self) -> None:
        """Leaving the ``with`` block does not end the span: a stream or a callback will."""
        self._deferred = True

    def end(self) -> None:
        """End the span once, then run ``CALL_END_HOOKS``."""
        if self._ended:
            return
        self._ended = True
        self.span.end()
        if CALL_END_HOOKS:
            for hook in CALL_END_HOOKS:
                try:  # not ``guard``: with metrics on, every call comes here
                    hook(self)
                except Exception as exc:  # noqa: BLE001  # reported; the other hooks still run
                    _report(f"{self.site.name}: call end hook", exc)
        self.exception = None  # no cycle left through the exception's traceback

    @property
    def ended(self) -> bool:
        return self._ended

    def fail(self, exc: BaseException) -> None:
        """The call raised: record (unless a cancellation), end, detach."""
        try:
            if not _is_cancelled(exc):
                self.record_exception(exc)
        finally:  # a span whose exception could not be recorded still ends
            self.end()
            self.detach()

    def __enter__(self) -> Call:
        if self._token is None and not self._ended:  # the site's start attached it already
            with guard(self.site.where_start):
                self.attach()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:  # not ``guard``: one try for the steps, and the detach runs whatever happens
            try:
                if exc is not None and not _is_cancelled(exc):
                    self.record_exception(exc)
            finally:  # a span whose exception could not be recorded still ends
                if not self._deferred:
                    self.end()
        except Exception as error:  # noqa: BLE001  # reported; the application's exception goes on
            _report(self.site.where_end, error)
        finally:
            token = self._token  # ``detach()``, inlined: every call passes here
            if token is not None:
                self._token = None
                detach(token)

    # -- streams ------------------------------------------------------------------------

    def stream(self, iterable: Any, *, end: bool = True, closed: bool = False) -> Any:
        """``iterable`` (sync or async) produced inside the call's context, step by step.

        With ``end`` the call ends when the stream is exhausted, raises, is closed or is
        garbage collected; an exception of the stream is recorded either way. ``closed``: the
        consumer always closes the stream (a WSGI server, PEP 3333), so it is not watched for
        its collection, which would cost every request a finalizer.
        """
        self._deferred = self._deferred or end
        if hasattr(iterable, "__iter__") or not hasattr(iterable, "__aiter__"):
            if closed or not end:
                if _NativeStream is not None:  # the same steps, without two Python frames
                    return _NativeStream(iterable, self, end, _STREAM_HOOKS)
                return _Stream(iterable, self, end)
            return _CollectedStream(iterable, self, end)
        return _AsyncStream(iterable, self, end)


class _Untraced(Call):
    """What ``CallSite.call`` gives when the call is not traced: every method does nothing."""

    __slots__ = ()

    def set_status_code(self, code: Any, details: str | None = None) -> None:
        return None

    def capture_response_headers(self, headers: Iterable[tuple[str, str]]) -> None:
        return None

    def record_exception(self, exc: BaseException) -> None:
        return None

    def end(self) -> None:
        return None

    def attach(self) -> None:
        return None

    def __enter__(self) -> Call:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def stream(self, iterable: Any, *, end: bool = True, closed: bool = False) -> Any:
        return iterable


def _exit_failed(kind: str, owner: Any, exc: Exception) -> None:
    """A failure inside the native ``Call.__exit__``, reported as the Python steps report it:
    an end hook's, a span processor's ``on_end``, a token detached elsewhere, another step's."""
    if kind == "hook":
        _report(f"{owner.site.name}: call end hook", exc)
    elif kind == "on_end":
        owner._tracer.diagnostics.internal_error("span processor on_end", exc)
    elif kind == "detach" and isinstance(exc, ValueError | RuntimeError):
        _detach_failed(exc)
    else:
        _report(owner.site.where_end, exc)


#: ``Call.__exit__``, ``Call.end`` and ``Call.detach`` as written above: the twins of
#: ``sdk/_speedups.c``'s ``call_exit``, ``call_end`` and ``call_detach``, which replace them on
#: ``Call`` where the native module is built. The native exit takes a call that raised nothing,
#: of a class that keeps ``Call.end`` (``Call`` or a subclass not overriding it), whose span is
#: this SDK's; each native method hands anything else to its twin (the toolkit's tests run both).
_python_exit: Final = Call.__exit__
_python_end: Final = Call.end
_python_detach: Final = Call.detach
_native_exit: Any = None
_native_end: Any = None
_native_detach: Any = None
if _native_starter is not None and speedups is not None:
    _native_exit, _native_end, _native_detach = speedups.call_exit_for(
        (
            Call,
            _Token,
            globals(),  # where ``CALL_END_HOOKS`` is read at each end, as ``Call.end`` does
            _python_exit,
            _exit_failed,
            detach,
            _current_context,
            _current_span,
            _python_end,
            _python_detach,
        )
    )
    Call.__exit__ = _native_exit  # type: ignore[method-assign]
    Call.end = _native_end  # type: ignore[method-assign]
    Call.detach = _native_detach  # type: ignore[method-assign]


def _stream_step_failed(call: Call, exc: BaseException, end: bool) -> None:
    with guard(call.site.where_end):
        try:
            if not _is_cancelled(exc):
                call.record_exception(exc)
        finally:  # a span whose exception could not be recorded still ends
            if end:
                call.end()


def _stream_over(call: Call) -> None:
    try:  # not ``guard``: every stream ends here
        call.end()
    except Exception as exc:  # noqa: BLE001  # reported; the stream's consumer goes on
        _report(call.site.where_end, exc)


class _Stream:
    """A sync stream run with its call's context attached around each step.

    ``_NativeStream`` (``sdk/_speedups.c``'s ``ContextStream``, where built) is its twin, given
    ``_STREAM_HOOKS``: the two context variables, then ``_stream_over`` and ``_stream_step_failed``.
    """

    __slots__ = ("__weakref__", "_call", "_close", "_end", "_iterator")

    def __init__(self, iterable: Iterable[Any], call: Call, end: bool) -> None:
        self._call = call
        self._end = end
        self._close: Callable[[], Any] | None = getattr(iterable, "close", None)
        self._iterator: Iterator[Any] = iter(iterable)

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        call = self._call
        context = call.context
        # ``attach``/``detach`` inlined (a step is as cheap as a request's body is short): set
        # and reset in this one frame, so never from another context than the one that set.
        context_token = _current_context.set(context)
        span_token = _current_span.set(call.span)  # the span ``start`` put in the context
        try:
            return next(self._iterator)
        except StopIteration:
            if self._end and not call._ended:
                try:  # ``_stream_over``, in this frame: most streams end here
                    call.end()
                except Exception as exc:  # noqa: BLE001  # reported; the consumer goes on
                    _report(call.site.where_end, exc)
            raise
        except BaseException as exc:
            _stream_step_failed(call, exc, self._end)
            raise
        finally:
            _current_span.reset(span_token)
            _current_context.reset(context_token)

    def close(self) -> None:
        try:
            if self._close is not None:
                self._close()
        finally:
            if self._end and not self._call._ended:
                _stream_over(self._call)


_STREAM_HOOKS: Final = (_current_context, _current_span, _stream_over, _stream_step_failed)
_NativeStream: Callable[[Any, Call, bool, tuple[Any, ...]], Any] | None = (
    speedups.ContextStream if speedups is not None else None
)


class _CollectedStream(_Stream):
    """A sync stream whose collection, unfinished and unclosed, ends its call."""

    __slots__ = ()

    def __del__(self) -> None:
        if self._end and not self._call._ended:
            _stream_over(self._call)


class _AsyncStream:
    """An async stream run with its call's context attached around each step."""

    __slots__ = ("__weakref__", "_call", "_close", "_end", "_iterator")

    def __init__(self, iterable: Any, call: Call, end: bool) -> None:
        self._call = call
        self._end = end
        self._close: Callable[[], Any] | None = getattr(iterable, "aclose", None)
        self._iterator: AsyncIterator[Any] = (
            iterable if hasattr(iterable, "__anext__") else iterable.__aiter__()
        )

    def __aiter__(self) -> _AsyncStream:
        return self

    async def __anext__(self) -> Any:
        call = self._call
        token = attach(call.context)
        try:
            return await self._iterator.__anext__()
        except StopAsyncIteration:
            if self._end and not call._ended:
                _stream_over(call)
            raise
        except BaseException as exc:
            _stream_step_failed(call, exc, self._end)
            raise
        finally:
            detach(token)

    async def aclose(self) -> None:
        try:
            if self._close is not None:
                await self._close()
        finally:
            if self._end and not self._call._ended:
                _stream_over(self._call)

    def __del__(self) -> None:
        if self._end and not self._call._ended:  # dropped unfinished: collected ends it
            _stream_over(self._call)


def _layer_key(layer: str) -> str:
    """The context key that says "inside a client call of this layer" (HTTP's is shared)."""
    return _http.CLIENT_SPAN_KEY if layer == "http" else f"telemetry_run.{layer}_client_span"


class _Fixed:
    """A span name that does not depend on the attributes."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, attributes: Mapping[str, Any], *args: Any, **kwargs: Any) -> str:
        return self.name


def _not_suppressed() -> bool:
    """The default gate: on, except inside ``suppress_instrumentation()``."""
    return not _is_suppressed()


def _checked_by_caller() -> bool:
    """The gate of a site built with ``enabled=None``: its wrapper checked the real one."""
    return True


class CallSite:
    """One patch point's calls: what is constant for them, and the sequence that traces one.

    Build it with ``client_call`` or ``server_call`` once (at ``instrument()``), then per call
    use ``start`` (a ``Call`` or None), ``call`` (a context manager), ``stream``, or the site
    itself as a decorator.
    """

    __slots__ = (
        "_falls_back",
        "_gated",
        "_incoming",
        "_layer_key",
        "attributes",
        "call_type",
        "carrier",
        "enabled",
        "excluded",
        "getter",
        "kind",
        "metric",
        "name",
        "request_headers",
        "rules",
        "setter",
        "settings",
        "span_name",
        "tracer",
        "untraced",
        "where_end",
        "where_start",
    )

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        kind: SpanKind,
        *,
        attributes: Callable[..., dict[str, Any]],
        span_name: str | Callable[..., str],
        carrier: Callable[..., Any] | None = None,
        setter: Setter[Any] | None = None,
        getter: Getter[Any] | None = None,
        rules: StatusRules = PLAIN,
        settings: _http.HttpSettings | None = None,
        excluded: Callable[..., bool] | None = None,
        request_headers: Callable[..., Iterable[tuple[str, str]]] | None = None,
        enabled: Callable[[], bool] | None = _not_suppressed,
        layer: str | None = None,
        call_type: type[Call] = Call,
        noun: str = "call",
        metric: str | None = None,
    ) -> None:
        self.tracer = tracer
        self.name = name
        self.kind = kind
        self._incoming = kind is SpanKind.SERVER or kind is SpanKind.CONSUMER
        self._falls_back = kind is SpanKind.CONSUMER
        self.attributes = attributes
        self.span_name = span_name if callable(span_name) else _Fixed(span_name)
        self.carrier = carrier
        self.setter = setter
        self.getter: Getter[Any] = getter if getter is not None else _default_getter
        self.rules = rules
        self.settings = settings
        self.excluded = excluded
        capture = settings is not None and settings.request_headers is not None
        self.request_headers = request_headers if capture else None
        self.enabled: Callable[[], bool] = enabled if enabled is not None else _checked_by_caller
        self._gated = enabled is not None  # without a gate, ``start`` skips calling one
        self._layer_key = _layer_key(layer) if layer is not None else None
        self.call_type = call_type
        self.where_start = f"{name}: {noun} start"
        self.where_end = f"{name}: {noun} end"
        self.untraced: Call = _Untraced(self, INVALID_SPAN, Context(), {})
        self.metric = metric
        if metric is not None:
            from telemetry_run.instrumentors import _call_metrics

            _call_metrics.install(metric)

    def start(self, *args: Any, start_time: int | None = None, **kwargs: Any) -> Call | None:
        """Start (and attach) the call's span; None when it is not traced.

        ``args`` and ``kwargs`` go to the site's callables; ``start_time`` (ns since the epoch)
        backdates the span, for a call that is traced once it returned (a consumer's receive).

        Not traced: the gate ``enabled`` is off (by default inside ``suppress_instrumentation()``;
        an ``Instrumentor`` passes its own ``enabled``; None: the wrapper checked it already,
        one gate per call), ``excluded`` says so, a client call is
        nested in another of its layer (it then only carries the context), or a step of ours
        failed (reported).
        """
        if self._gated and not self.enabled():
            return None
        try:  # not ``guard``: this runs for every request, and a try costs nothing
            excluded = self.excluded
            if excluded is not None and excluded(*args, **kwargs):
                return None
            carrier = None if self.carrier is None else self.carrier(*args, **kwargs)
            layer_key = self._layer_key
            incoming = self._incoming
            if incoming:
                if layer_key is not None and get_value(layer_key) is not None:
                    if carrier is not None:  # nested: the outer call's context, no span
                        self._inject(carrier, None)
                    return None
                # A server starts from the caller's context alone, a consumer from its own.
                base = get_current() if self._falls_back else None
                parent = base if carrier is None else extract(carrier, base, self.getter)
            else:
                parent = get_current()
                if layer_key is not None and parent.get(layer_key) is not None:
                    if carrier is not None:  # nested: the outer call's context, no span
                        self._inject(carrier, None)
                    return None
            attributes = self.attributes(*args, **kwargs)
            name = self.span_name(attributes, *args, **kwargs)
            # Positional: the API's order (name, context, kind, attributes, links, start_time).
            span = self.tracer.start_span(name, parent, self.kind, attributes, None, start_time)
            try:
                # ``set_span_in_context(span, parent)``, in this frame: a fresh copy, the span set.
                context = Context(parent if parent is not None else get_current())
                _dict_setitem(context, _SPAN_KEY, span)
                if layer_key is not None:
                    _dict_setitem(context, layer_key, span)
                if carrier is not None and not incoming:  # ``_inject``, knowing the span
                    setter = self.setter
                    _inject_started(
                        carrier, span, context, _default_setter if setter is None else setter
                    )
                headers = self.request_headers  # None unless headers are to be captured
                if headers is not None and span.is_recording():
                    settings: Any = self.settings
                    captured = settings.captured(
                        "http.request.header.", settings.request_headers, headers(*args, **kwargs)
                    )
                    span.set_attributes(captured)
                call = self.call_type(self, span, context, attributes)
            except BaseException:
                span.end()  # a step of ours failed: the span is kept, never left open
                raise
            # ``attach(context)``, in this frame; last: nothing after it can fail.
            call._token = _Token(_current_context.set(context), _current_span.set(span))
            return call
        except Exception as exc:  # noqa: BLE001  # reported; the call goes on untraced
            _report(self.where_start, exc)
            return None

    def _inject(self, carrier: Any, context: Context | None) -> None:
        if self.setter is None:
            inject(carrier, context)
        else:
            inject(carrier, context, self.setter)

    def call(self, *args: Any, **kwargs: Any) -> Call:
        """A context manager for one call: a ``Call``, inert when the call is not traced."""
        return self.start(*args, **kwargs) or self.untraced

    def stream(self, call: Call | None, iterable: Any) -> Any:
        """``iterable`` ending ``call`` with the stream (``iterable`` itself for None)."""
        if call is None:
            return iterable
        call.detach()  # the stream attaches around each step, in whichever frame runs it
        with guard(self.where_start):
            return call.stream(iterable)
        with guard(self.where_end):  # the stream could not be wrapped: the call ends now
            call.end()
        return iterable

    def __call__(self, fn: F) -> F:
        """Decorate ``fn``: each invocation is one call, its arguments the builders' arguments.

        A generator function or async generator function's call ends with its stream; a
        coroutine function's when it returns or raises.
        """
        site = self
        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(fn):

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                stream = fn(*args, **kwargs)  # nothing runs yet; bad arguments raise here
                return site.stream(site.start(*args, **kwargs), stream)

        elif inspect.iscoroutinefunction(fn):

            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                with site.call(*args, **kwargs):
                    return await fn(*args, **kwargs)

        elif inspect.isgeneratorfunction(fn):

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                stream = fn(*args, **kwargs)  # nothing runs yet; bad arguments raise here
                return site.stream(site.start(*args, **kwargs), stream)

        else:

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with site.call(*args, **kwargs):
                    return fn(*args, **kwargs)

        return functools.wraps(fn)(wrapper)  # type: ignore[return-value]


def _start_failed(site: CallSite, exc: Exception) -> None:
    """A step of the native ``CallSite.start`` failed: reported as the Python one reports it."""
    _report(site.where_start, exc)


#: ``CallSite.start`` as written above: the twin of ``sdk/_speedups.c``'s ``site_start``, which
#: replaces it on ``CallSite`` where the native module is built. The native one takes positional
#: arguments on a site without excluded URLs or header capture; it hands anything else to this
#: one (the toolkit's tests run both).
_python_start: Final = CallSite.start
_native_start: Any = None
if _native_exit is not None and speedups is not None:
    _native_start = speedups.site_start_for(
        (
            CallSite,
            Call,
            Context,
            _python_start,
            _start_failed,
            get_current,
            extract,
            _inject_started,
            _default_setter,
            globals(),  # where ``perf_counter`` is read at each start, as ``Call`` does
            # ``Instrumentor.enabled``, the gate most sites have, is evaluated in C (the
            # instrumentor's ``active``, then the suppression) while base.py's
            # ``_is_suppressed`` is the SDK's; any other gate is called.
            _base.Instrumentor.enabled,
            vars(_base),
            _is_suppressed,
            # A WSGI environ without trace headers under the default propagators gives the
            # parent as it is, as ``extract`` would say (checked in C, sparing the call).
            WSGIEnvironGetter,
            vars(_textmap),
            # A client's dict carrier gets ``traceparent`` written in C when that is all the
            # default propagators would write (no trace state, no baggage under this key).
            _BAGGAGE_KEY,
        )
    )
    CallSite.start = _native_start  # type: ignore[method-assign]


class SiteOptions(TypedDict, total=False):
    """What ``client_call`` and ``server_call`` take besides their own arguments.

    ``carrier(*args)``: the headers the context is injected into (client) or extracted from
    (server); ``rules``: the protocol's ``StatusRules``; ``settings``: an ``HttpSettings`` for
    header capture; ``excluded(*args)``: true skips the call; ``request_headers(*args)``: the
    request's headers as pairs, captured per ``settings``; ``enabled``: the gate (an
    ``Instrumentor``'s ``enabled``; None for a wrapper that checks it before the call);
    ``call_type``: a ``Call`` subclass adding a protocol's steps; ``noun``: our failures are
    reported as ``"{name}: {noun} start"`` (or ``end``); ``metric``: the conventions' duration
    histogram each call is recorded in (``http.server.request.duration``...;
    ``_call_metrics.KINDS`` has the names).
    """

    carrier: Callable[..., Any] | None
    rules: StatusRules
    settings: _http.HttpSettings | None
    excluded: Callable[..., bool] | None
    request_headers: Callable[..., Iterable[tuple[str, str]]] | None
    enabled: Callable[[], bool] | None
    call_type: type[Call]
    noun: str
    metric: str | None


def client_call(
    tracer: Tracer,
    name: str,
    *,
    attributes: Callable[..., dict[str, Any]],
    span_name: str | Callable[..., str],
    setter: Setter[Any] | None = None,
    layer: str | None = "http",
    kind: SpanKind = SpanKind.CLIENT,
    **options: Unpack[SiteOptions],
) -> CallSite:
    """The site of a library's outgoing calls: CLIENT spans (or PRODUCER, with ``kind``).

    ``attributes(*args)`` builds the conventions' attributes, ``span_name(attributes, *args)``
    names the span; the context is injected into ``carrier(*args)`` with ``setter`` (by default
    the one for a mapping). One span per logical call of ``layer`` (None: each call is one).
    """
    return CallSite(
        tracer,
        name,
        kind,
        attributes=attributes,
        span_name=span_name,
        setter=setter,
        layer=layer,
        **options,
    )


def server_call(
    tracer: Tracer,
    name: str,
    *,
    attributes: Callable[..., dict[str, Any]],
    span_name: str | Callable[..., str],
    getter: Getter[Any] | None = None,
    kind: SpanKind = SpanKind.SERVER,
    **options: Unpack[SiteOptions],
) -> CallSite:
    """The site of a library's incoming calls: SERVER spans (or CONSUMER, with ``kind``).

    As ``client_call``, except that the parent context is extracted from ``carrier(*args)``
    with ``getter`` (by default the one for a mapping); a server starts from it alone, a
    consumer falls back on the current context.
    """
    return CallSite(
        tracer, name, kind, attributes=attributes, span_name=span_name, getter=getter, **options
    )
