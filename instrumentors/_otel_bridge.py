"""The OpenTelemetry API's objects, backed by ours: one trace, one current span, one propagator.

Imported only after the application (or a library) imported ``opentelemetry.trace``: it
subclasses the API's abstract classes, so the API package must be there.

How the current span is shared. ``opentelemetry.context`` keeps its current context in a
pluggable "runtime context" (``opentelemetry.context._RUNTIME_CONTEXT``, by default a
``contextvars.ContextVar`` holding the API's immutable ``Context`` mapping) and every API
function (``get_current``, ``attach``, ``detach``, hence ``get_current_span``, ``use_span``,
``start_as_current_span`` of any SDK) goes through that one object at call time. Two designs
were possible: keep both contexts and copy the span across on every attach (each side would
need a hook on the other's attach, and a span made current on one side while the other side
attaches would be lost), or make the API's runtime context a view of ours. This module does the
latter: ``BridgeRuntimeContext`` stores nothing of its own. ``attach`` translates the API's
mapping into ours (the API's span key becomes our ``SPAN_KEY``, its baggage and suppression
keys ours, any other key passes as is) and attaches it with our ``attach``; ``get_current``
translates our current context back (cached while ours is unchanged, so reading the current
span twice costs one dictionary build). Our contextvars are then the single source: a span our
Flask instrumentor makes current is what ``opentelemetry.trace.get_current_span()`` returns,
and a span an API user makes current is the parent our ``requests`` span gets. Threads and
asyncio tasks behave as before, since ours is contextvars-based too.

Spans cross in both directions: one of ours is handed to API code as a ``BridgeSpan`` (the
API's ``Span`` interface, converting its value types), and a span of another implementation
(an application's own opentelemetry-sdk provider, an API ``NonRecordingSpan``) is carried in our
context as a ``_ForeignSpan``, a non-recording span with the same ids that gives the original
object back to API code, so our spans still parent on it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Final, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.baggage import _BAGGAGE_KEY as _OTEL_BAGGAGE_KEY
from opentelemetry.context.context import Context as OtelContext
from opentelemetry.context.context import _RuntimeContext
from opentelemetry.propagators import textmap as otel_textmap
from opentelemetry.trace.propagation import _SPAN_KEY as _OTEL_SPAN_KEY
from opentelemetry.util import types as otel_types

from telemetry_run.sdk import context as ours
from telemetry_run.sdk import propagation
from telemetry_run.sdk.baggage import _BAGGAGE_KEY
from telemetry_run.sdk.diagnostics import get_diagnostics
from telemetry_run.sdk.trace import api
from telemetry_run.sdk.trace.scoped import CurrentSpan

__all__ = [
    "BridgePropagator",
    "BridgeRuntimeContext",
    "BridgeSpan",
    "BridgeTracer",
    "BridgeTracerProvider",
    "context_from_otel",
    "context_to_otel",
    "span_context_from_otel",
    "span_context_to_otel",
]

_OTEL_SUPPRESS_KEY: Final = otel_context._SUPPRESS_INSTRUMENTATION_KEY
_SPAN_KEY: Final = ours.SPAN_KEY
_SUPPRESS_KEY: Final = ours.SUPPRESS_INSTRUMENTATION_KEY
_OTEL_EMPTY_STATE: Final = otel_trace.TraceState()
_OTEL_INVALID: Final = otel_trace.INVALID_SPAN_CONTEXT
_KINDS: Final = {kind: api.SpanKind(kind.value) for kind in otel_trace.SpanKind}
_CODES: Final = {code: api.StatusCode(code.value) for code in otel_trace.StatusCode}
F = TypeVar("F", bound=Callable[..., Any])


# ---- value types ----------------------------------------------------------------------------


def span_context_to_otel(context: api.SpanContext) -> otel_trace.SpanContext:
    """Ours as the API's (ids, flags, trace state and remoteness kept)."""
    if not context.is_valid:
        return _OTEL_INVALID
    state = context.trace_state
    return otel_trace.SpanContext(
        context.trace_id,
        context.span_id,
        context.is_remote,
        otel_trace.TraceFlags(context.trace_flags),
        otel_trace.TraceState(list(state.items())) if state else _OTEL_EMPTY_STATE,
    )


def span_context_from_otel(context: otel_trace.SpanContext) -> api.SpanContext:
    """The API's as ours."""
    state = context.trace_state
    return api.SpanContext(
        context.trace_id,
        context.span_id,
        context.is_remote,
        int(context.trace_flags),
        api.TraceState(list(state.items())) if state else None,
    )


def _attributes(attributes: object) -> Any:
    """The API's attributes as ours: the API allows more value types (bytes, mappings), which
    our span checks at run time, counting and dropping what it cannot store."""
    return attributes


def _links_from_otel(links: Sequence[otel_trace.Link] | None) -> list[api.Link] | None:
    if not links:
        return None
    return [
        api.Link(span_context_from_otel(link.context), _attributes(link.attributes))
        for link in links
    ]


def _status_from_otel(
    status: otel_trace.Status | otel_trace.StatusCode, description: str | None
) -> api.Status:
    if isinstance(status, otel_trace.Status):
        return api.Status(_CODES[status.status_code], status.description)
    return api.Status(_CODES[status], description)


# ---- spans ----------------------------------------------------------------------------------


class BridgeSpan(otel_trace.Span):
    """One of our spans behind the API's ``Span`` interface; equal to any other bridge of it."""

    __slots__ = ("_otel_context", "span")

    def __init__(self, span: api.Span) -> None:
        self.span = span
        self._otel_context: otel_trace.SpanContext | None = None

    def get_span_context(self) -> otel_trace.SpanContext:
        context = self._otel_context
        if context is None:
            context = self._otel_context = span_context_to_otel(self.span.get_span_context())
        return context

    def is_recording(self) -> bool:
        return self.span.is_recording()

    def set_attribute(self, key: str, value: otel_types.AttributeValue) -> None:
        self.span.set_attribute(key, _attributes(value))

    def set_attributes(self, attributes: Mapping[str, otel_types.AttributeValue]) -> None:
        self.span.set_attributes(_attributes(attributes))

    def add_event(
        self, name: str, attributes: otel_types.Attributes = None, timestamp: int | None = None
    ) -> None:
        self.span.add_event(name, _attributes(attributes), timestamp)

    def add_link(
        self, context: otel_trace.SpanContext, attributes: otel_types.Attributes = None
    ) -> None:
        self.span.add_link(span_context_from_otel(context), _attributes(attributes))

    def update_name(self, name: str) -> None:
        self.span.update_name(name)

    def set_status(
        self,
        status: otel_trace.Status | otel_trace.StatusCode,
        description: str | None = None,
    ) -> None:
        self.span.set_status(_status_from_otel(status, description))

    def record_exception(
        self,
        exception: BaseException,
        attributes: otel_types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self.span.record_exception(exception, _attributes(attributes), timestamp, escaped)

    def end(self, end_time: int | None = None) -> None:
        self.span.end(end_time)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        # Ours records an escaping exception as the span's start flags asked, then ends it.
        self.span.__exit__(exc_type, exc_val, exc_tb)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BridgeSpan) and other.span is self.span

    def __hash__(self) -> int:
        return id(self.span)

    def __repr__(self) -> str:
        return f"BridgeSpan({self.span!r})"


class _ForeignSpan(api.NonRecordingSpan):
    """Another implementation's span, carried in our context with its ids (our spans parent on
    it); API code reading the context gets the original object back."""

    __slots__ = ("foreign",)

    def __init__(self, foreign: otel_trace.Span) -> None:
        super().__init__(span_context_from_otel(foreign.get_span_context()))
        self.foreign = foreign


# The last span handed to API code and its bridge: reading the current span again returns the
# same object (identity, as with the SDK), without a dictionary keyed by spans.
_last_bridged: tuple[object, BridgeSpan | None] = (None, None)


def span_to_otel(span: api.Span) -> otel_trace.Span:
    global _last_bridged
    if type(span) is _ForeignSpan:
        return span.foreign
    last_span, last_bridge = _last_bridged
    if last_span is span and last_bridge is not None:
        return last_bridge
    bridge = BridgeSpan(span)
    _last_bridged = (span, bridge)
    return bridge


def span_from_otel(span: object) -> api.Span | None:
    if type(span) is BridgeSpan:
        return span.span
    if isinstance(span, otel_trace.Span):
        return _ForeignSpan(span)
    return None  # not a span: the API ignores it too (get_current_span gives INVALID_SPAN)


# ---- contexts -------------------------------------------------------------------------------


def context_to_otel(context: Mapping[str, object]) -> OtelContext:
    """Our context as the API's: the span, baggage and suppression under the API's keys."""
    values = dict(context)
    span = values.pop(_SPAN_KEY, None)
    if isinstance(span, api.Span):
        values[_OTEL_SPAN_KEY] = span_to_otel(span)
    baggage = values.pop(_BAGGAGE_KEY, None)
    if isinstance(baggage, Mapping):
        values[_OTEL_BAGGAGE_KEY] = dict(baggage)  # the API's get_all accepts a dict only
    if values.pop(_SUPPRESS_KEY, None) is True:
        values[_OTEL_SUPPRESS_KEY] = True
    return OtelContext(values)


def context_from_otel(context: Mapping[str, object]) -> ours.Context:
    """The API's context as ours (the inverse of ``context_to_otel``)."""
    values = dict(context)
    span = span_from_otel(values.pop(_OTEL_SPAN_KEY, None))
    if span is not None:
        values[_SPAN_KEY] = span
    baggage = values.pop(_OTEL_BAGGAGE_KEY, None)
    if isinstance(baggage, Mapping):
        values[_BAGGAGE_KEY] = MappingProxyType(dict(baggage))
    if values.pop(_OTEL_SUPPRESS_KEY, None) is True:
        values[_SUPPRESS_KEY] = True
    return ours.Context(values)


class BridgeRuntimeContext(_RuntimeContext):
    """The API's runtime context as a view of ours (see the module docstring)."""

    def __init__(self, previous: _RuntimeContext) -> None:
        # The runtime we replaced: a token it issued before the swap is still detached by it.
        self.previous = previous
        self._last: tuple[object, object, OtelContext] = (None, None, OtelContext())

    def attach(self, context: OtelContext) -> contextvars.Token[OtelContext]:
        try:
            converted = context_from_otel(context)
        except Exception as exc:  # noqa: BLE001  # a foreign span's bug: reported, not raised
            get_diagnostics().internal_error("opentelemetry-api context attach", exc)
            converted = ours.get_current()  # attached unchanged, so detach() still pairs
        token = ours.attach(converted)
        return token  # type: ignore[return-value]  # opaque to the API: detach() takes it back

    def get_current(self) -> OtelContext:
        current, span = ours._current_get(), ours._span_get()
        last_current, last_span, last = self._last
        if last_current is current and last_span is span:
            return last
        try:
            converted = context_to_otel(ours.get_current())
        except Exception as exc:  # noqa: BLE001  # reported; the API sees an empty context
            get_diagnostics().internal_error("opentelemetry-api current context", exc)
            return OtelContext()
        self._last = (current, span, converted)
        return converted

    def detach(self, token: contextvars.Token[OtelContext]) -> None:
        given: object = token
        if isinstance(given, ours.Token):
            ours.detach(given)
        else:
            self.previous.detach(token)


# ---- tracers --------------------------------------------------------------------------------


class _CurrentBridgeSpan:
    """``start_as_current_span``: ours (our span current for the block), yielding the bridge."""

    __slots__ = ("_inner",)

    def __init__(self, inner: CurrentSpan) -> None:
        self._inner = inner

    def __enter__(self) -> otel_trace.Span:
        return span_to_otel(self._inner.__enter__())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inner.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        return self._inner(func)


class BridgeTracer(otel_trace.Tracer):
    """An API tracer whose spans are ours, in our pipeline.

    Once the application installs its own provider (``opentelemetry.trace.set_tracer_provider``),
    a tracer handed out before follows it, as the API's proxy tracers do.
    """

    def __init__(self, bridge: BridgeTracerProvider, tracer: api.Tracer, args: tuple[Any, ...]):
        self._bridge = bridge
        self._tracer = tracer
        self._args = args  # get_tracer's arguments, for the application's provider
        self._followed: tuple[otel_trace.TracerProvider, otel_trace.Tracer] | None = None

    def _follow(self, provider: otel_trace.TracerProvider) -> otel_trace.Tracer:
        followed = self._followed
        if followed is None or followed[0] is not provider:
            followed = self._followed = (provider, provider.get_tracer(*self._args))
        return followed[1]

    def start_span(
        self,
        name: str,
        context: OtelContext | None = None,
        kind: otel_trace.SpanKind = otel_trace.SpanKind.INTERNAL,
        attributes: otel_types.Attributes = None,
        links: Sequence[otel_trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> otel_trace.Span:
        replaced = self._bridge.replaced_by
        if replaced is not None:
            return self._follow(replaced).start_span(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
            )
        span = self._tracer.start_span(
            name,
            None if context is None else context_from_otel(context),
            _KINDS.get(kind, api.SpanKind.INTERNAL),
            _attributes(attributes),
            _links_from_otel(links),
            start_time,
            record_exception,
            set_status_on_exception,
        )
        return BridgeSpan(span)

    def start_as_current_span(
        self,
        name: str,
        context: OtelContext | None = None,
        kind: otel_trace.SpanKind = otel_trace.SpanKind.INTERNAL,
        attributes: otel_types.Attributes = None,
        links: Sequence[otel_trace.Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Any:
        replaced = self._bridge.replaced_by
        if replaced is not None:
            return self._follow(replaced).start_as_current_span(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
                end_on_exit,
            )
        inner = self._tracer.start_as_current_span(
            name,
            None if context is None else context_from_otel(context),
            _KINDS.get(kind, api.SpanKind.INTERNAL),
            _attributes(attributes),
            _links_from_otel(links),
            start_time,
            record_exception,
            set_status_on_exception,
            end_on_exit,
        )
        return _CurrentBridgeSpan(inner)

    @property
    def tracer(self) -> api.Tracer:
        """Our tracer behind this one."""
        return self._tracer


class BridgeTracerProvider(otel_trace.TracerProvider):
    """The API's global tracer provider under telemetry-run: hands out ``BridgeTracer``s.

    ``replaced_by`` is the application's own provider once it set one (the tracers follow it).
    ``force_flush`` flushes our pipeline; ``shutdown`` only flushes too, since the launcher
    shuts the pipeline down at exit, after the application's last spans.
    """

    def __init__(self, provider: api.TracerProvider) -> None:
        self.provider = provider
        self.replaced_by: otel_trace.TracerProvider | None = None

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: otel_types.Attributes = None,
    ) -> otel_trace.Tracer:
        args = (instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        tracer = self.provider.get_tracer(*cast("tuple[str, Any, Any, Any]", args))
        return BridgeTracer(self, tracer, args)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        flush = getattr(self.provider, "force_flush", None)
        return bool(flush(timeout_millis / 1000)) if flush is not None else True

    def shutdown(self) -> None:
        self.force_flush()

    def __repr__(self) -> str:
        return f"telemetry-run's bridge to {self.provider!r}"


# ---- propagation ----------------------------------------------------------------------------


class BridgePropagator(otel_textmap.TextMapPropagator):
    """``opentelemetry.propagate``'s global propagator: ours (``OTEL_PROPAGATORS`` as the
    launcher read it), so API users inject and extract exactly what our instrumentors do."""

    def extract(
        self,
        carrier: otel_textmap.CarrierT,
        context: OtelContext | None = None,
        getter: otel_textmap.Getter[otel_textmap.CarrierT] = otel_textmap.default_getter,
    ) -> OtelContext:
        base = None if context is None else context_from_otel(context)
        return context_to_otel(propagation.extract(carrier, base, getter))

    def inject(
        self,
        carrier: otel_textmap.CarrierT,
        context: OtelContext | None = None,
        setter: otel_textmap.Setter[otel_textmap.CarrierT] = otel_textmap.default_setter,
    ) -> None:
        propagation.inject(carrier, None if context is None else context_from_otel(context), setter)

    @property
    def fields(self) -> set[str]:
        return propagation.get_global_textmap().fields
