"""The recording span: what a sampled span accumulates between start and end.

After ``end()`` the same object is the read-only record processors and exporters see
(``ReadableSpan``); there is no copy. The hot path (``set_attribute``, ``end``) checks the common
value types by identity and leaves everything else to ``clean_attribute_value``.

An ended span may wait in the export queue for a long time (a backlog, a collector outage), so
the batch processor compacts the attributes of a span that will wait (``compact_attributes``):
the dict becomes a tuple of the values followed by the tuple of the keys, and spans with the same
keys in the same order (the spans of one instrumentation point) share that key tuple: about 100
bytes less a span. ``attributes`` still reads as a mapping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk._native import speedups
from telemetry_run.sdk._redaction import scrub_text
from telemetry_run.sdk.trace.api import (
    Attributes,
    AttributeValue,
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    _new_context,
)

if TYPE_CHECKING:
    from telemetry_run.sdk.diagnostics import Diagnostics
    from telemetry_run.sdk.resources import Resource
    from telemetry_run.sdk.trace.provider import Tracer

__all__ = [
    "Event",
    "InstrumentationScope",
    "ReadableSpan",
    "RecordingSpan",
    "clean_attribute_value",
    "clean_attributes",
    "compact_attributes",
]

_time_ns = time.time_ns
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_INVALID: Final[Any] = object()
_UNSET_STATUS: Final = Status()
_EMPTY_STATE: Final = TraceState.get_default()
# RecordingSpan's exception handling: bit 1 record_exception, bit 2 set_status_on_exception.
_DEFAULT_EXC_FLAGS: Final = 3
_SCALARS: Final = (bool, str, int, float)
_PLAIN_TYPES: Final = frozenset((bool, str, float))  # kept as they are (ints: their range)

# The native twin of clean_attributes' plain check, where built (pyproject's ext-modules).
_native_plain: Callable[[object], dict[str, AttributeValue] | None] | None = (
    speedups.plain_attributes if speedups is not None else None
)

# The key tuples of ended spans' attributes, each kept once. Bounded: keys built from data would
# otherwise grow it without end; when full it starts over (spans keep their own tuples).
_KEY_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}
_MAX_KEY_TUPLES: Final = 1024
_NO_ATTRIBUTES: Final[tuple[Any, ...]] = ((),)  # an ended span's attributes: no values, no keys


def _shared_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    if len(_KEY_TUPLES) >= _MAX_KEY_TUPLES:
        _KEY_TUPLES.clear()
    return _KEY_TUPLES.setdefault(keys, keys)


class InstrumentationScope:
    """Who produced a span: the tracer's name, version, schema url and attributes."""

    __slots__ = ("attributes", "name", "schema_url", "version")

    def __init__(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ):
        self.name = name
        self.version = version
        self.schema_url = schema_url
        self.attributes: Mapping[str, AttributeValue] = attributes or {}

    def __repr__(self) -> str:
        return f"InstrumentationScope({self.name!r}, {self.version!r})"


class Event:
    """A timestamped annotation on a span (``exception`` events come from record_exception)."""

    __slots__ = ("attributes", "dropped_attributes", "name", "timestamp")

    def __init__(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue],
        timestamp: int,
        dropped_attributes: int = 0,
    ):
        self.name = name
        self.attributes = attributes
        self.timestamp = timestamp
        self.dropped_attributes = dropped_attributes

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {dict(self.attributes)!r})"


def _truncate(value: str, limit: int | None) -> str:
    return value if limit is None or len(value) <= limit else value[:limit]


def clean_attribute_value(value: object, max_length: int | None = None) -> Any:
    """The value as an OTLP-encodable attribute, or ``_INVALID``.

    Valid: str, bool, int (64-bit), float, and homogeneous sequences of those (``None`` allowed
    inside). Subclasses (enums, str subclasses) become their base type; sequences become tuples
    so the value cannot change after it is set. Nothing here raises.
    """
    try:
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, str):
            return _truncate(str.__str__(value), max_length)
        if isinstance(value, int):
            as_int = int.__index__(value)
            return as_int if _INT64_MIN <= as_int <= _INT64_MAX else _INVALID
        if isinstance(value, float):
            return float(value)
        if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
            return _clean_sequence(value, max_length)
    except Exception:  # noqa: BLE001  # a hostile __index__/__len__ makes the value invalid
        return _INVALID
    return _INVALID


def _clean_sequence(values: Sequence[object], max_length: int | None) -> Any:
    kind: type | None = None
    cleaned: list[object] = []
    for item in values:
        if item is None:
            cleaned.append(None)
            continue
        item_kind = next((t for t in _SCALARS if isinstance(item, t)), None)
        if item_kind is None or (kind is not None and item_kind is not kind):
            return _INVALID
        kind = item_kind
        clean = clean_attribute_value(item, max_length)
        if clean is _INVALID:
            return _INVALID
        cleaned.append(clean)
    return tuple(cleaned)


def clean_attributes(
    attributes: Attributes,
    max_count: int,
    max_length: int | None,
    diagnostics: Diagnostics,
) -> tuple[dict[str, AttributeValue], int]:
    """Valid attributes up to ``max_count``, and how many were dropped for the limit."""
    cleaned: dict[str, AttributeValue] = {}
    dropped = 0
    if not attributes:
        return cleaned, 0
    fits = len(attributes) <= max_count  # the usual case: no count to check per attribute
    if fits and max_length is None:
        # What instrumentors pass: exact str/bool/float or 64-bit int values under non-empty
        # str keys, nothing to cut. Checked without building, then copied in one call.
        if _native_plain is not None:
            copied = _native_plain(attributes)
            if copied is not None:
                return copied, 0
        else:
            for key, value in attributes.items():
                kind = type(value)
                if type(key) is not str or not key:
                    break
                if kind not in _PLAIN_TYPES and (
                    kind is not int or not _INT64_MIN <= value <= _INT64_MAX  # type: ignore[operator]
                ):
                    break
            else:
                return dict(attributes), 0
    for key, value in attributes.items():
        if type(key) is not str or not key:
            _report_invalid(diagnostics, key, value)
            continue
        # Exact str/int/bool/float are what instrumentors pass: checked here, without a call.
        clean: Any
        kind = type(value)
        if type(value) is str:  # (not `kind is str`: mypy narrows only this spelling)
            clean = value if max_length is None or len(value) <= max_length else value[:max_length]
        elif kind is bool or kind is float:
            clean = value
        elif type(value) is int:
            clean = value if _INT64_MIN <= value <= _INT64_MAX else _INVALID
        else:
            clean = clean_attribute_value(value, max_length)
        if clean is _INVALID:
            _report_invalid(diagnostics, key, value)
            continue
        if fits or key in cleaned or len(cleaned) < max_count:
            cleaned[key] = clean
        else:
            dropped += 1
    return cleaned, dropped


def _report_invalid(diagnostics: Diagnostics, key: object, value: object) -> None:
    diagnostics.attributes_dropped.incr()
    try:
        shown = f"{key!r}: {type(value).__name__}"
    except Exception:  # noqa: BLE001  # a key whose __repr__ raises
        shown = type(key).__name__
    diagnostics.warn(
        "invalid-attribute",
        "dropped an invalid span attribute (%s); values must be str, bool, int, "
        "float or a homogeneous sequence of them",
        shown,
    )


class _Extra:
    """What most spans do not have, allocated on the first need: events, links, attributes
    dropped for the limit, exception handling other than the default, a trace state of its own
    (the sampler's, other than the parent's). Each slot of the span costs 8 bytes a span."""

    __slots__ = (
        "dropped_attributes",
        "dropped_events",
        "dropped_links",
        "events",
        "exc_flags",
        "links",
        "trace_state",
    )

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.links: list[Link] = []
        self.dropped_attributes = 0
        self.dropped_events = 0
        self.dropped_links = 0
        self.exc_flags = _DEFAULT_EXC_FLAGS
        self.trace_state: TraceState | None = None  # None: the parent's (a root's: empty)


class RecordingSpan(Span):
    """A sampled (or record-only) span; after ``end()`` it is the ReadableSpan exporters get.

    The SpanContext is built on first request (a child's start, an exporter) rather than at
    start: a leaf span that is only exported never pays for it on the application's thread.
    """

    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_extra",
        "_flags",
        "_kind",
        "_name",
        "_parent",
        "_span_id",
        "_start_time",
        "_status",
        "_trace_id",
        "_tracer",
    )

    _tracer: Tracer
    _name: str
    _trace_id: int
    _span_id: int
    _flags: TraceFlags
    _context: SpanContext | None
    _parent: SpanContext | None
    _kind: SpanKind
    _start_time: int
    _end_time: int | None
    # While recording, a dict; once compacted (ended), (*values, keys): see the module docstring.
    _attributes: Any
    _extra: _Extra | None
    _status: Status

    # -- ReadableSpan: what processors and exporters read ------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def context(self) -> SpanContext:
        return self.get_span_context()

    @property
    def trace_id(self) -> int:
        return self._trace_id

    @property
    def span_id(self) -> int:
        return self._span_id

    @property
    def trace_flags(self) -> TraceFlags:
        return self._flags

    @property
    def trace_state(self) -> TraceState:
        """The span's own trace state, without building its SpanContext (exporters read it)."""
        extra = self._extra
        if extra is not None and extra.trace_state is not None:
            return extra.trace_state
        parent = self._parent
        return parent.trace_state if parent is not None else _EMPTY_STATE

    @property
    def parent(self) -> SpanContext | None:
        return self._parent

    @property
    def kind(self) -> SpanKind:
        return self._kind

    @property
    def start_time(self) -> int:
        return self._start_time

    @property
    def end_time(self) -> int | None:
        return self._end_time

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        attributes = self._attributes
        if type(attributes) is dict:
            return attributes
        return dict(zip(attributes[-1], attributes, strict=False))

    @property
    def events(self) -> Sequence[Event]:
        return self._extra.events if self._extra is not None else ()

    @property
    def links(self) -> Sequence[Link]:
        return self._extra.links if self._extra is not None else ()

    @property
    def status(self) -> Status:
        return self._status

    @property
    def resource(self) -> Resource:
        return self._tracer.resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        return self._tracer.scope

    @property
    def dropped_attributes(self) -> int:
        return self._extra.dropped_attributes if self._extra is not None else 0

    @property
    def dropped_events(self) -> int:
        return self._extra.dropped_events if self._extra is not None else 0

    @property
    def dropped_links(self) -> int:
        return self._extra.dropped_links if self._extra is not None else 0

    # -- Span -------------------------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        ctx = self._context
        if ctx is None:
            ctx = self._context = _new_context(
                self._trace_id, self._span_id, self._flags, self.trace_state
            )
        return ctx

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        tracer = self._tracer
        value_type = type(value)
        if (
            (
                value_type in tracer.fast_types
                or (value_type is int and _INT64_MIN <= value <= _INT64_MAX)  # type: ignore[operator]
            )
            and type(key) is str
            and key
            and self._end_time is None
        ):
            attributes = self._attributes
            if len(attributes) < tracer.max_attributes or key in attributes:
                attributes[key] = value
            else:
                self._more().dropped_attributes += 1
            return
        self._set_attribute_checked(key, value)

    def _set_attribute_checked(self, key: object, value: object) -> None:
        tracer = self._tracer
        if self._end_time is not None:
            tracer.diagnostics.warn(
                "ended-span", "span %r: attribute set after end() ignored", self._name, level=10
            )
            return
        clean = clean_attribute_value(value, tracer.max_attribute_length)
        if clean is _INVALID or type(key) is not str or not key:
            _report_invalid(tracer.diagnostics, key, value)
            return
        attributes = self._attributes
        if len(attributes) < tracer.max_attributes or key in attributes:
            attributes[key] = clean
        else:
            self._more().dropped_attributes += 1

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is not None:
            return
        tracer = self._tracer
        limits = tracer.limits
        extra = self._more()
        if len(extra.events) >= limits.max_events:
            extra.dropped_events += 1
            return
        cleaned, dropped = clean_attributes(
            attributes, limits.max_event_attributes, limits.max_attribute_length, tracer.diagnostics
        )
        extra.events.append(
            Event(str(name), cleaned, timestamp if timestamp is not None else _time_ns(), dropped)
        )

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self._end_time is not None or not isinstance(context, SpanContext):
            return
        if not context.is_valid and not attributes and not context.trace_state:
            return
        limits = self._tracer.limits
        extra = self._more()
        if len(extra.links) >= limits.max_links:
            extra.dropped_links += 1
            return
        cleaned, dropped = clean_attributes(
            attributes,
            limits.max_link_attributes,
            limits.max_attribute_length,
            self._tracer.diagnostics,
        )
        link = Link(context, cleaned)
        link.dropped_attributes = dropped
        extra.links.append(link)

    def _more(self) -> _Extra:
        extra = self._extra
        if extra is None:
            extra = self._extra = _Extra()
        return extra

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = str(name)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return  # OK is final, as the specification says
        given: object = status  # checked at run time: app code may pass anything
        if isinstance(given, StatusCode):
            given = Status(given, description)
        if isinstance(given, Status) and given.status_code is not StatusCode.UNSET:
            # Often an exception's message: the URL the library failed on, query and all.
            text = given.description
            if isinstance(text, str) and text:
                scrubbed = scrub_text(text)
                if scrubbed is not text:
                    given = Status(given.status_code, scrubbed)
            self._status = given

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        if self._end_time is not None:
            return
        exc_type = type(exception)
        module = exc_type.__module__
        qualname = exc_type.__qualname__
        event_attributes: dict[str, AttributeValue] = {
            "exception.type": qualname if module == "builtins" else f"{module}.{qualname}",
            # Both scrubbed: the trace's last line repeats the message, and a frame's source
            # line can hold a URL literal with its credentials.
            "exception.message": scrub_text(_safe_str(exception)),
            "exception.stacktrace": scrub_text(_format_stacktrace(exception)),
        }
        if attributes:
            event_attributes.update(attributes)
        self.add_event("exception", event_attributes, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            self._tracer.diagnostics.warn(
                "end-twice",
                "span %r ended more than once; the second end() is ignored",
                self._name,
                level=10,
            )
            return
        self._end_time = end_time if end_time is not None else _time_ns()
        tracer = self._tracer
        tracer.ended()
        if self._extra is not None:
            self._count_limits(tracer.diagnostics)
        try:
            tracer.on_end(self)
        except Exception as exc:  # noqa: BLE001  # a processor's bug never reaches the app
            tracer.diagnostics.internal_error("span processor on_end", exc)

    def _count_limits(self, diagnostics: Diagnostics) -> None:
        """What the limits cut from this span, for the exit line (the span carries it too)."""
        extra = self._extra
        if extra is not None:
            limited = diagnostics.over_limits
            limited["attributes"].add(extra.dropped_attributes)
            limited["events"].add(extra.dropped_events)
            limited["links"].add(extra.dropped_links)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and self._end_time is None:
            finish_with_exception(self, exc)
        self.end()

    def __repr__(self) -> str:
        return (
            f"RecordingSpan({self._name!r}, trace_id=0x{self._trace_id:032x}, "
            f"span_id=0x{self._span_id:016x})"
        )


ReadableSpan = RecordingSpan


def compact_attributes(span: RecordingSpan) -> None:
    """Hold an ended span's attributes in a tuple: ``(*values, keys)``, the keys shared.

    For spans that wait to be exported; the cost (a few hundred nanoseconds) is not worth it on
    spans exported at once. ``attributes`` reads the same before and after.
    """
    attributes = span._attributes
    if type(attributes) is dict and span._end_time is not None:
        if attributes:
            keys = tuple(attributes)
            span._attributes = (*attributes.values(), _KEY_TUPLES.get(keys) or _shared_keys(keys))
        else:
            span._attributes = _NO_ATTRIBUTES


def finish_with_exception(span: RecordingSpan, exc: BaseException) -> None:
    """Record an exception escaping a span's block, as the span's flags ask."""
    if isinstance(exc, GeneratorExit):
        return
    extra = span._extra
    flags = extra.exc_flags if extra is not None else _DEFAULT_EXC_FLAGS
    if flags & 1:
        span.record_exception(exc, escaped=True)
    if flags & 2:
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {_safe_str(exc)}"))


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001  # an exception whose __str__ raises still gets recorded
        return f"<unprintable {type(value).__name__}>"


def _format_stacktrace(exception: BaseException) -> str:
    try:
        import traceback  # on the first recorded exception, not at every start-up

        return "".join(
            traceback.format_exception(type(exception), exception, exception.__traceback__)
        )
    except Exception:  # noqa: BLE001
        return f"{type(exception).__name__}: {_safe_str(exception)}"
