"""W3C Trace Context (``traceparent`` / ``tracestate``), the default way spans cross processes.

Runs on every inbound and outbound request, so parsing is one precompiled match over fixed
positions plus ``int(x, 16)`` (or its native twin in ``sdk/_speedups.c``, where built; the
tests run both and compare them on generated headers); anything malformed leaves the context
as it was (W3C: restart the trace), and nothing a peer sends can make it raise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from telemetry_run.sdk._native import speedups
from telemetry_run.sdk.context import SPAN_KEY, Context, get_value
from telemetry_run.sdk.propagation import _textmap
from telemetry_run.sdk.propagation._carriers import Getter, Setter, WSGIEnvironGetter
from telemetry_run.sdk.propagation._textmap import (
    CarrierT,
    TextMapPropagator,
    _default_getter,
    _default_setter,
)
from telemetry_run.sdk.trace.api import (
    NonRecordingSpan,
    Span,
    SpanContext,
    TraceFlags,
    TraceState,
    parse_tracestate,
)
from telemetry_run.sdk.trace.current import set_span_in_context
from telemetry_run.sdk.trace.span import RecordingSpan

__all__ = ["TraceContextTextMapPropagator", "format_tracestate", "inject_started"]

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
_ENVIRON_TRACEPARENT: Final = "HTTP_TRACEPARENT"  # where a WSGI environ holds the header
_WSGI_GETTER: Final[type] = WSGIEnvironGetter  # its look-ups, read without its calls

# version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex only, version ff forbidden.
_TRACEPARENT: Final = r"(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})"
_LENGTH: Final = 55
_FLAGS_BY_VALUE: Final = tuple(TraceFlags(i) for i in range(256))
_FLAGS: Final = {f"{i:02x}": flags for i, flags in enumerate(_FLAGS_BY_VALUE)}
_EMPTY_STATE: Final = TraceState.get_default()
_STATE_BUDGET: Final = 512  # W3C 3.3.1.5: propagate at least this much of tracestate
_LARGE_MEMBER: Final = 128  # ... and when truncating, drop members longer than this first
_FIELDS: Final = frozenset((TRACEPARENT, TRACESTATE))

# Compiled on first use, not at import (every instrumented process imports this module at
# start-up; the first request with a traceparent pays for the compilation). It matches fixed
# positions only: no repetition that could backtrack.
_TRACEPARENT_RE: re.Pattern[str] | None = None


def _compile_traceparent() -> re.Pattern[str]:
    global _TRACEPARENT_RE
    _TRACEPARENT_RE = re.compile(_TRACEPARENT)
    return _TRACEPARENT_RE


_new: Final = object.__new__

# The native twins of the match and the f-string below, where they were built (pyproject's
# ext-modules); None: the Python code runs, doing the same.
_native_parse: Callable[[str], tuple[int, str, int, int] | None] | None = (
    speedups.parse_traceparent if speedups is not None else None
)
_native_format: Callable[[str, int, int], str] | None = (
    speedups.format_traceparent if speedups is not None else None
)

# The flags we send: sampled (0x01) and random-trace-id (0x02); W3C says to send other bits as 0.
_FLAGS_OUT: Final = ("-00", "-01", "-02", "-03")

# The hex of the trace id last read or written: a service injects the trace id it extracted
# into every downstream call, and each span of a trace injects the same one.
_last_trace: tuple[int, str] = (0, "0" * 32)


def _single(values: object) -> str | None:
    """The one header value a getter returned; several ``traceparent`` values are invalid."""
    if type(values) is list:
        if len(values) == 1 and type(values[0]) is str:
            return values[0]
        return None
    if isinstance(values, str):
        return str(values)
    if isinstance(values, tuple) and len(values) == 1 and isinstance(values[0], str):
        return str(values[0])
    return None


# Parsed and formatted tracestate, reused: a TraceState is immutable, and a service sees the
# same few tracestate values (a vendor's sampling flags, an upstream's entry) over and over.
# Bounded, and emptied when full rather than tracking recency.
_CACHE_SIZE: Final = 256
_parsed_states: dict[str, TraceState] = {}
_formatted_states: dict[int, tuple[TraceState, str]] = {}


def _parse_tracestate(values: object) -> TraceState:
    """The combined ``tracestate`` headers; any invalid member discards them all (W3C)."""
    if type(values) is list and len(values) == 1:
        values = values[0]
    if type(values) is str:
        if len(values) > _STATE_BUDGET:
            return parse_tracestate(values)  # size-capped before it is read
        state = _parsed_states.get(values)
        if state is None:
            state = parse_tracestate(values)
            if len(_parsed_states) >= _CACHE_SIZE:
                _parsed_states.clear()
            _parsed_states[values] = state
        return state
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple):
        return _EMPTY_STATE
    return TraceState.from_header(values)


def format_tracestate(state: TraceState) -> str:
    """The ``tracestate`` header for ``state``, cut to 512 characters as W3C 3.3.1.5 says.

    Whole members go: first the ones longer than 128 characters, rightmost first, then from the
    end, each step only while the header is still too long.
    """
    if state._header is not None:  # the incoming text, unchanged: already within the budget
        return state._header
    # Keyed by identity; the entry holds the state, so its id cannot be reused meanwhile.
    cached = _formatted_states.get(id(state))
    if cached is not None and cached[0] is state:
        return cached[1]
    header = _fit(state)
    _remember_format(state, header)
    return header


def _remember_format(state: TraceState, header: str) -> None:
    if len(_formatted_states) >= _CACHE_SIZE:
        _formatted_states.clear()
    _formatted_states[id(state)] = (state, header)


def _fit(state: TraceState) -> str:
    header = state.to_header()
    if len(header) <= _STATE_BUDGET:
        return header
    members = [f"{key}={value}" for key, value in state.items()]
    size = len(header)
    for index in range(len(members) - 1, -1, -1):
        if size <= _STATE_BUDGET:
            break
        if len(members[index]) > _LARGE_MEMBER:
            size -= len(members.pop(index)) + 1
    while size > _STATE_BUDGET and members:
        size -= len(members.pop()) + 1
    return ",".join(members)


class TraceContextTextMapPropagator(TextMapPropagator):
    """Reads and writes W3C ``traceparent`` and ``tracestate`` headers.

    With the default getter and a ``dict`` carrier holding ``traceparent`` under that exact
    name, ``tracestate`` is looked up under its exact name too: such a dict spells its keys in
    lowercase (as W3C asks senders to), and scanning every key for another spelling would cost
    more than the parsing. Any other carrier is read through the getter, in any case.
    """

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = _default_getter,
    ) -> Context:
        """``context`` with the span the ``traceparent`` describes as current; unchanged if
        that header is missing or invalid (W3C: restart the trace).

        Version 00 is exactly 55 characters. A higher version (``ff`` is forbidden) may carry
        more fields after a ``-``; only the first four, at their fixed positions, are read.
        Leading and trailing spaces and tabs (HTTP optional whitespace) are ignored. The
        ``tracestate`` values are parsed only once the traceparent is known to be valid. One
        frame on purpose: this runs on every inbound request.
        """
        header: object = None
        if getter is _default_getter and isinstance(carrier, dict):
            header = carrier.get(TRACEPARENT)
        if type(header) is str:
            states: object = carrier.get(TRACESTATE)  # type: ignore[attr-defined]
        else:
            if (
                type(getter) is _WSGI_GETTER
                and type(carrier) is dict  # exactly: a subclass may read otherwise
                and _ENVIRON_TRACEPARENT not in carrier  # type: ignore[operator]
            ):
                return context if context is not None else Context()  # what the getter would say
            values = getter.get(carrier, TRACEPARENT)
            header = _single(values) if values is not None else None  # absent: the usual case
            if header is None:
                return context if context is not None else Context()
            states = getter.get(carrier, TRACESTATE)
        if len(header) != _LENGTH:
            header = header.strip(" \t")
            size = len(header)
            if size != _LENGTH and (size < _LENGTH or header[_LENGTH] != "-" or header[:2] == "00"):
                return context if context is not None else Context()
        if _native_parse is not None:  # the same fields, in a fifth of the time
            parsed = _native_parse(header)
            if parsed is None:
                return context if context is not None else Context()
            trace_id, trace_hex, span_id, flag_bits = parsed
            flags = _FLAGS_BY_VALUE[flag_bits]
        else:
            match = (_TRACEPARENT_RE or _compile_traceparent()).match(header)
            if match is None:
                return context if context is not None else Context()
            trace_hex, span_hex, flag_hex = match.groups()
            trace_id = int(trace_hex, 16)
            span_id = int(span_hex, 16)
            if not trace_id or not span_id:
                return context if context is not None else Context()
            flags = _FLAGS[flag_hex]
        global _last_trace
        _last_trace = (trace_id, trace_hex)
        if not states:
            state = _EMPTY_STATE
        else:
            # The cache look-up of _parse_tracestate inlined for the usual single str value.
            cached = _parsed_states.get(states) if type(states) is str else None
            state = cached if cached is not None else _parse_tracestate(states)
        # 32 and 16 hex digits, both non-zero: valid, so SpanContext's own checks are skipped
        # (``trace.api._remote_span``, inlined: one frame).
        remote = _new(SpanContext)
        remote.trace_id = trace_id
        remote.span_id = span_id
        remote.is_remote = True
        remote.trace_flags = flags
        remote.trace_state = state
        remote.is_valid = True
        span = _new(NonRecordingSpan)
        span._context = remote
        if context is None:
            # What set_span_in_context does to an empty context, without copying one.
            return Context({SPAN_KEY: span})
        return set_span_in_context(span, context)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = _default_setter,
    ) -> None:
        # get_current_span() without its isinstance check against the Span ABC, which costs
        # as much as formatting the header: anything else under the span key is skipped below.
        span: Any = context.get(SPAN_KEY) if context is not None else get_value(SPAN_KEY)
        span_context: SpanContext
        if type(span) is NonRecordingSpan:  # a remote parent, passed on: its context, no call
            span_context = span._context
        else:
            try:
                span_context = span.get_span_context()
            except AttributeError:  # no span (None), or not a Span
                return
        if span_context.is_valid:
            _write(
                carrier,
                setter,
                span_context.trace_id,
                span_context.span_id,
                span_context.trace_flags,
                span_context.trace_state,
            )

    @property
    def fields(self) -> set[str]:
        return set(_FIELDS)


def _write(
    carrier: Any, setter: Setter[Any], trace_id: int, span_id: int, flags: int, state: TraceState
) -> None:
    """``traceparent`` (and ``tracestate`` when the state is not empty) of a valid span context."""
    global _last_trace
    last = _last_trace
    if last[0] == trace_id:
        trace_hex = last[1]
    else:
        trace_hex = trace_id.to_bytes(16).hex()
        _last_trace = (trace_id, trace_hex)
    if _native_format is not None:  # the same text, in one allocation
        header = _native_format(trace_hex, span_id, flags)
    else:
        # to_bytes().hex() zero-pads like a "016x" format, in half its time; a valid context
        # keeps the ids within their 8 and 16 bytes.
        header = f"00-{trace_hex}-{span_id.to_bytes(8).hex()}{_FLAGS_OUT[flags & 3]}"
    if setter is _default_setter and isinstance(carrier, dict):
        carrier[TRACEPARENT] = header
        if state is not _EMPTY_STATE:
            # The extracted text when unchanged, else format_tracestate's cache look-up,
            # inlined (an empty state formats as "").
            text = state._header
            if text is None:
                cached = _formatted_states.get(id(state))
                text = (
                    cached[1]
                    if cached is not None and cached[0] is state
                    else format_tracestate(state)
                )
            if text:
                carrier[TRACESTATE] = text
        return
    setter.set(carrier, TRACEPARENT, header)
    if state is not _EMPTY_STATE and state:
        header = format_tracestate(state)
        if header:
            setter.set(carrier, TRACESTATE, header)


def inject_started(
    carrier: Any, span: Span, context: Context, setter: Setter[Any] = _default_setter
) -> None:
    """``inject(carrier, context)`` for a ``context`` whose span is ``span``, just started here.

    Every client call injects the span it started into its request. With the default
    propagators (``OTEL_PROPAGATORS`` unset: trace context, then baggage) the headers are
    written from the span's own fields: no composite loop, no look-up of the span in the
    context, no ``SpanContext`` built for it. Each propagator's failure is reported as the
    composite reports it, and the other still runs. Any other propagators, or a span that is
    not recording (a sampled-out or suppressed one), take the general ``inject``.
    """
    default = _textmap._default
    if default is None or default[0] is not _textmap._global or type(span) is not RecordingSpan:
        _textmap.inject(carrier, context, setter)
        return
    try:
        _write(carrier, setter, span._trace_id, span._span_id, span._flags, span.trace_state)
    except Exception:  # noqa: BLE001  # reported once; the baggage is still sent
        _textmap._report(default[1], "inject")
    try:
        default[2].inject(carrier, context, setter)
    except Exception:  # noqa: BLE001  # reported once; the request goes on
        _textmap._report(default[2], "inject")
