"""The tracing API types application code sees, shaped like the OpenTelemetry API.

Value types (``SpanContext``, ``TraceFlags``, ``TraceState``, ``Status``, ``Link``, ``SpanKind``)
and the abstract ``Span``, ``Tracer`` and ``TracerProvider``. The SDK's recording span and
provider implement these; ``NonRecordingSpan`` is what a sampled-out or suppressed span is.
"""

from __future__ import annotations

import _thread
import abc
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk import forking

if TYPE_CHECKING:
    from telemetry_run.sdk.context import Context

__all__ = [
    "INVALID_SPAN",
    "INVALID_SPAN_CONTEXT",
    "INVALID_SPAN_ID",
    "INVALID_TRACE_ID",
    "AttributeValue",
    "Attributes",
    "Link",
    "NonRecordingSpan",
    "Span",
    "SpanContext",
    "SpanKind",
    "Status",
    "StatusCode",
    "TraceFlags",
    "TraceState",
    "Tracer",
    "TracerProvider",
]

AttributeValue = (
    str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]
)
Attributes = Mapping[str, AttributeValue] | None

INVALID_TRACE_ID: Final = 0
INVALID_SPAN_ID: Final = 0
_TRACE_ID_MAX: Final = (1 << 128) - 1
_SPAN_ID_MAX: Final = (1 << 64) - 1


class SpanKind(enum.Enum):
    INTERNAL = 0
    SERVER = 1
    CLIENT = 2
    PRODUCER = 3
    CONSUMER = 4


class StatusCode(enum.Enum):
    UNSET = 0
    OK = 1
    ERROR = 2


class Status:
    """A span's status; the description is kept only for ERROR, as the specification says."""

    __slots__ = ("description", "status_code")

    def __init__(self, status_code: StatusCode = StatusCode.UNSET, description: str | None = None):
        self.status_code = status_code
        self.description = description if status_code is StatusCode.ERROR else None

    @property
    def is_ok(self) -> bool:
        return self.status_code is not StatusCode.ERROR

    @property
    def is_unset(self) -> bool:
        return self.status_code is StatusCode.UNSET

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Status)
            and other.status_code is self.status_code
            and other.description == self.description
        )

    def __hash__(self) -> int:
        return hash((self.status_code, self.description))

    def __repr__(self) -> str:
        return f"Status({self.status_code.name}, {self.description!r})"


class TraceFlags(int):
    """The W3C trace-flags byte: ``sampled`` (0x01) and, in Level 2, ``random-trace-id`` (0x02).

    A remote parent's context keeps the whole byte it was sent; only the two defined bits are
    ever propagated.
    """

    DEFAULT: Final = 0x00
    SAMPLED: Final = 0x01
    RANDOM_TRACE_ID: Final = 0x02

    @classmethod
    def get_default(cls) -> TraceFlags:
        return _FLAGS_DEFAULT

    @property
    def sampled(self) -> bool:
        return bool(self & TraceFlags.SAMPLED)

    @property
    def random_trace_id(self) -> bool:
        """The trace id has at least 56 random low bits (W3C Trace Context Level 2)."""
        return bool(self & TraceFlags.RANDOM_TRACE_ID)


_FLAGS_DEFAULT = TraceFlags(TraceFlags.DEFAULT)
_FLAGS_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
# The flags of our own spans, indexed by sampled | random-trace-id.
_SPAN_FLAGS: Final = (
    _FLAGS_DEFAULT,
    _FLAGS_SAMPLED,
    TraceFlags(TraceFlags.RANDOM_TRACE_ID),
    TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID),
)

# W3C Trace Context Level 2, "tracestate Header": the list-member grammar, checked with str and
# bytes methods (linear, C speed, no regular expression that could backtrack on hostile input).
# key = ( lcalpha / DIGIT ) 0*255( keychar ),
# keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
_KEY_FIRST: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
_KEYCHARS: Final = (_KEY_FIRST + "_-*/@").encode()
_MAX_KEY: Final = 256
_MAX_VALUE: Final = 256  # value = 0*255( chr ) nblk-chr
_MAX_MEMBERS: Final = 32
# Caps checked before any parsing. A valid list is at most 32 members of 256 + 1 + 256 characters
# (16,447 with the commas); OWS and empty members are allowed around them, so a little room is
# left for those, and anything larger is rejected in O(1) instead of being read.
_MAX_LIST_CHARS: Final = 32_768
# W3C 3.3.1.5: a propagator passes on at least 512 characters and may cut a longer list, so
# only a text within them is kept for reuse (a longer one is cut by the propagator).
_KEPT_HEADER_CHARS: Final = 512
_MAX_LIST_ITEMS: Final = 128  # comma-separated items, empty ones included (4x the member limit)
# ASCII whitespace that ``str.strip()`` removes besides spaces and tabs (all invalid in a member).
_NOT_OTHER_WHITESPACE: Final = bytes(
    c for c in range(256) if c not in b"\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
)


def _is_valid_key(key: str) -> bool:
    return (
        0 < len(key) <= _MAX_KEY
        and key[0] in _KEY_FIRST
        and key.isascii()
        and not key.encode().translate(None, _KEYCHARS)
    )


def _is_valid_value(value: str) -> bool:
    # chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E: printable ASCII but "," "="
    return (
        0 < len(value) <= _MAX_VALUE
        and value.isascii()
        and value.isprintable()
        and value[-1] != " "
        and "," not in value
        and "=" not in value
    )


class TraceState(Mapping[str, str]):
    """The W3C ``tracestate`` list: at most 32 ordered, unique, grammar-checked members.

    Every mutation returns a new TraceState; invalid keys or values leave it unchanged.
    """

    # _header: the incoming ``tracestate`` text when it already is this list's normal form,
    # so an inject after extract passes it on without formatting it again; None otherwise.
    # A mutation makes a new TraceState, which has none.
    __slots__ = ("_entries", "_header")

    def __init__(self, entries: Sequence[tuple[str, str]] | None = None):
        valid: dict[str, str] = {}
        for key, value in entries or ():
            if len(valid) >= _MAX_MEMBERS:
                break
            if key in valid or not _is_valid_pair(key, value):
                continue
            valid[key] = value
        self._entries = valid
        self._header: str | None = None

    def __getitem__(self, key: str) -> str:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TraceState({list(self._entries.items())!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TraceState):
            return list(self._entries.items()) == list(other._entries.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._entries.items()))

    def add(self, key: str, value: str) -> TraceState:
        """A new member goes first; an existing key or a full list leaves this unchanged."""
        if key in self._entries or len(self._entries) >= _MAX_MEMBERS:
            return self
        if not _is_valid_pair(key, value):
            return self
        return _from_dict({key: value, **self._entries})

    def update(self, key: str, value: str) -> TraceState:
        """The updated member moves first, as W3C asks for a mutated entry."""
        if key not in self._entries or not _is_valid_pair(key, value):
            return self
        rest = {k: v for k, v in self._entries.items() if k != key}
        return _from_dict({key: value, **rest})

    def delete(self, key: str) -> TraceState:
        if key not in self._entries:
            return self
        return _from_dict({k: v for k, v in self._entries.items() if k != key})

    def to_header(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self._entries.items())

    @classmethod
    def from_header(cls, header_list: Sequence[str]) -> TraceState:
        """Parse one or more ``tracestate`` header values: several lines are one list.

        An invalid member or more than 32 members make the whole list invalid: the result is
        an empty TraceState (W3C: do not propagate a broken list). Empty members and spaces or
        tabs around members are allowed and skipped. A duplicate key does not invalidate the
        list (Level 2): its first, leftmost member is kept, as that is the most recently
        updated one, and the later ones are dropped. The cost is linear in the size, and a
        list too large to be valid is rejected before it is read.
        """
        if isinstance(header_list, str):  # a common slip: one header, not a list of them
            return parse_tracestate(str(header_list))
        if not isinstance(header_list, list | tuple):
            header_list = list(header_list)  # any iterable, as before
        if len(header_list) > _MAX_LIST_ITEMS:
            return _EMPTY_TRACE_STATE
        size = 0
        for header in header_list:
            if not isinstance(header, str):  # a carrier's values are not type-checked
                return _EMPTY_TRACE_STATE
            size += len(header) + 1
            if size > _MAX_LIST_CHARS + 1:
                return _EMPTY_TRACE_STATE
        if len(header_list) == 1:
            return parse_tracestate(header_list[0])
        return parse_tracestate(",".join(header_list))

    @classmethod
    def get_default(cls) -> TraceState:
        return _EMPTY_TRACE_STATE


def parse_tracestate(header: str) -> TraceState:
    """One ``tracestate`` list (several header lines already joined by commas); see from_header."""
    if len(header) > _MAX_LIST_CHARS or header.count(",") >= _MAX_LIST_ITEMS:
        return _EMPTY_TRACE_STATE
    entries: dict[str, str] = {}
    members = 0
    ows: str | None = " 	"
    if (" " in header or "	" in header) and (
        header.isascii() and not header.encode().translate(None, _NOT_OTHER_WHITESPACE)
    ):
        ows = None  # no other whitespace: str.strip() strips exactly OWS, ten times as fast
    normal = True  # no blank member, padding or duplicate: the text is its own normal form
    for item in header.split(","):
        member = item.strip(ows)
        if not member or member is not item:
            normal = False
            if not member:
                continue
        members += 1
        if members > _MAX_MEMBERS:
            return _EMPTY_TRACE_STATE
        key, sep, value = member.partition("=")
        if not sep or not _is_valid_key(key) or not _is_valid_value(value):
            return _EMPTY_TRACE_STATE
        if key not in entries:
            entries[key] = value
        else:
            normal = False
    if not entries:
        return _EMPTY_TRACE_STATE
    state = _from_dict(entries)
    if normal and len(header) <= _KEPT_HEADER_CHARS:
        state._header = header
    return state


def _is_valid_pair(key: object, value: object) -> bool:
    return (
        isinstance(key, str)
        and isinstance(value, str)
        and _is_valid_key(key)
        and _is_valid_value(value)
    )


def _from_dict(entries: dict[str, str]) -> TraceState:
    state = TraceState.__new__(TraceState)
    state._entries = entries
    state._header = None
    return state


_EMPTY_TRACE_STATE = _from_dict({})


class SpanContext:
    """The part of a span that crosses process boundaries: ids, flags and trace state.

    Treat it as immutable: it is shared by every child span and carrier. (Enforcing that with
    ``__setattr__`` would triple the cost of creating one, on every span start.)
    """

    __slots__ = ("is_remote", "is_valid", "span_id", "trace_flags", "trace_id", "trace_state")

    trace_id: int
    span_id: int
    is_remote: bool
    trace_flags: TraceFlags
    trace_state: TraceState
    is_valid: bool

    def __init__(
        self,
        trace_id: int,
        span_id: int,
        is_remote: bool,
        trace_flags: TraceFlags | int | None = None,
        trace_state: TraceState | None = None,
    ):
        self.trace_id = trace_id
        self.span_id = span_id
        self.is_remote = is_remote
        self.trace_flags = (
            _FLAGS_DEFAULT
            if trace_flags is None
            else (trace_flags if type(trace_flags) is TraceFlags else TraceFlags(trace_flags))
        )
        self.trace_state = trace_state if trace_state is not None else _EMPTY_TRACE_STATE
        self.is_valid = 0 < trace_id <= _TRACE_ID_MAX and 0 < span_id <= _SPAN_ID_MAX

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpanContext):
            return NotImplemented
        return (
            self.trace_id == other.trace_id
            and self.span_id == other.span_id
            and self.is_remote == other.is_remote
            and self.trace_flags == other.trace_flags
            and self.trace_state == other.trace_state
        )

    def __hash__(self) -> int:
        return hash((self.trace_id, self.span_id, self.is_remote, int(self.trace_flags)))

    def __repr__(self) -> str:
        return (
            f"SpanContext(trace_id=0x{self.trace_id:032x}, span_id=0x{self.span_id:016x}, "
            f"trace_flags=0x{self.trace_flags:02x}, trace_state={self.trace_state!r}, "
            f"is_remote={self.is_remote})"
        )


def _new_context(trace_id: int, span_id: int, flags: TraceFlags, state: TraceState) -> SpanContext:
    """Build a local SpanContext without __init__'s checks: the SDK's hot path."""
    ctx = _object_new(SpanContext)
    ctx.trace_id = trace_id
    ctx.span_id = span_id
    ctx.is_remote = False
    ctx.trace_flags = flags
    ctx.trace_state = state
    ctx.is_valid = True
    return ctx


def _remote_span(
    trace_id: int, span_id: int, flags: TraceFlags, state: TraceState
) -> NonRecordingSpan:
    """The remote parent a propagator read, built without the constructors' checks: the
    propagator has already validated the ids (non-zero, in range), and every traced inbound
    request makes one."""
    ctx = _object_new(SpanContext)
    ctx.trace_id = trace_id
    ctx.span_id = span_id
    ctx.is_remote = True
    ctx.trace_flags = flags
    ctx.trace_state = state
    ctx.is_valid = True
    span = _object_new(NonRecordingSpan)
    span._context = ctx
    return span


_object_new = object.__new__
INVALID_SPAN_CONTEXT: Final = SpanContext(INVALID_TRACE_ID, INVALID_SPAN_ID, False)


class Link:
    """A reference from one span to another span's context, with attributes."""

    __slots__ = ("attributes", "context", "dropped_attributes")

    def __init__(self, context: SpanContext, attributes: Attributes = None):
        self.context = context
        self.attributes: Mapping[str, AttributeValue] = attributes or {}
        self.dropped_attributes = 0

    def __repr__(self) -> str:
        return f"Link({self.context!r}, {dict(self.attributes)!r})"


class Span(abc.ABC):
    """A unit of work; use it as a context manager to end it."""

    __slots__ = ()

    @abc.abstractmethod
    def get_span_context(self) -> SpanContext: ...

    @abc.abstractmethod
    def is_recording(self) -> bool: ...

    @abc.abstractmethod
    def set_attribute(self, key: str, value: AttributeValue) -> None: ...

    @abc.abstractmethod
    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None: ...

    @abc.abstractmethod
    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None: ...

    @abc.abstractmethod
    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None: ...

    @abc.abstractmethod
    def update_name(self, name: str) -> None: ...

    @abc.abstractmethod
    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None: ...

    @abc.abstractmethod
    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None: ...

    @abc.abstractmethod
    def end(self, end_time: int | None = None) -> None: ...

    def __enter__(self) -> Span:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end()


class NonRecordingSpan(Span):
    """A span that only carries a context: sampled out, suppressed, or a remote parent."""

    __slots__ = ("_context",)

    def __init__(self, context: SpanContext):
        self._context = context

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return False

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        pass

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        pass

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        pass

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        pass

    def end(self, end_time: int | None = None) -> None:
        pass

    def __repr__(self) -> str:
        return f"NonRecordingSpan({self._context!r})"


class SampledOutSpan(NonRecordingSpan):
    """A span the sampler dropped: its flags and trace state; its ids and SpanContext are made
    on first request.

    Under a low sampling ratio (or always_off) most spans are these, and most are never asked
    for their context: only an inject, the application, or a recording child asks. So starting
    one is a single small object. Its span id, which only that request can observe, is drawn
    then; so is the trace id of a root, which its children share through ``_origin`` (they
    copy it if it was drawn already). Both come from the tracer's id generator, under a lock,
    so that threads asking at once all see the same ids. Made by the SDK's tracer only,
    without arguments: ``SampledOutSpan()`` skips ``NonRecordingSpan.__init__``, the cheaper
    call.
    """

    __slots__ = ("_flags", "_ids", "_origin", "_trace_id", "_trace_state")

    __init__ = object.__init__  # the tracer sets every slot

    _context: SpanContext | None  # type: ignore[assignment]  # made by get_span_context
    _trace_id: int  # 0 until drawn (a root's, or a child's whose root had not drawn it yet)
    _origin: SampledOutSpan | None  # the root whose trace id this span shares, if not drawn
    _flags: TraceFlags  # never sampled; random-trace-id as the trace's
    _trace_state: TraceState
    _ids: tuple[Callable[[], int], Callable[[], int]]  # the tracer's (span id, trace id) makers

    def get_span_context(self) -> SpanContext:
        ctx = self._context
        if ctx is None:
            with _ids_lock:
                ctx = self._context
                if ctx is None:
                    ctx = self._context = _new_context(
                        self._drawn_trace_id(), self._ids[0]() or 1, self._flags, self._trace_state
                    )
        return ctx

    def _drawn_trace_id(self) -> int:
        """The trace id, drawn now if this is the first request in its trace (lock held)."""
        trace_id = self._trace_id
        if not trace_id:
            origin = self._origin
            trace_id = (self._ids[1]() or 1) if origin is None else origin._drawn_trace_id()
            self._trace_id = trace_id
        return trace_id

    def __repr__(self) -> str:
        return f"NonRecordingSpan({self.get_span_context()!r})"


_ids_lock = _thread.allocate_lock()


def _reinit_lock_after_fork() -> None:
    global _ids_lock
    _ids_lock = _thread.allocate_lock()


forking.register(_reinit_lock_after_fork)

INVALID_SPAN: Final = NonRecordingSpan(INVALID_SPAN_CONTEXT)


class Tracer(abc.ABC):
    """Starts spans for one instrumentation scope."""

    @abc.abstractmethod
    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span: ...

    @abc.abstractmethod
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Any:
        """A context manager (yielding the span) that is also a decorator."""


class TracerProvider(abc.ABC):
    """Hands out tracers, one per instrumentation scope."""

    @abc.abstractmethod
    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> Tracer: ...
