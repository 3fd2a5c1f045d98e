"""Types of the optional native module built from ``_speedups.c``."""

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol

def parse_traceparent(header: str) -> tuple[int, str, int, int] | None:
    """The fields of a W3C traceparent's first 55 characters: trace id (and its hex), parent
    id, flags; None unless both ids are non-zero lowercase hex at their places."""

def format_traceparent(trace_hex: str, span_id: int, flags: int) -> str:
    """``00-{trace_hex}-{span_id:016x}-{flags & 3:02x}``, the header inject writes."""

def plain_attributes(attributes: object) -> dict[str, object] | None:
    """A copy of ``attributes`` when it is a dict of non-empty str keys to exact str, bool,
    float or 64-bit int values; None otherwise."""

class _Gate(Protocol):
    active: bool

class RecordFactory:
    """A ``logging`` record factory adding the correlation fields (``log_correlation``)."""

    def __init__(
        self,
        previous: Callable[..., Any],
        span_var: ContextVar[object],
        invalid: dict[str, object],
        gate: _Gate,
        in_span: Callable[[Any, object], object],
    ) -> None: ...
    @property
    def previous(self) -> Callable[..., Any]: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

class ContextStream:
    """``iterable`` run with ``call``'s context attached around each step (``toolkit._Stream``);
    ``hooks`` is (context_var, span_var, over, failed)."""

    def __init__(self, iterable: Any, call: Any, end: bool, hooks: tuple[Any, ...]) -> None: ...
    def __iter__(self) -> ContextStream: ...
    def __next__(self) -> Any: ...
    def close(self) -> None: ...

def configure_span_starter(constants: tuple[Any, ...]) -> None:
    """The SDK's span classes and constants ``SpanStarter`` uses (``trace/provider.py``)."""

class SpanStarter:
    """A tracer's ``start_span``: its usual case in C, anything else ``fallback``'s."""

    def __init__(self, tracer: Any, fallback: Callable[..., Any]) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

def call_exit_for(constants: tuple[Any, ...]) -> tuple[Any, Any, Any]:
    """The native ``__exit__``, ``end`` and ``detach`` of the toolkit's ``Call`` (method
    descriptors of that class)."""

def site_start_for(constants: tuple[Any, ...]) -> Any:
    """The native ``start`` of the toolkit's ``CallSite`` (a method descriptor of that class)."""

def batch_on_end_for(constants: tuple[Any, ...]) -> Any:
    """The native ``on_end`` of ``BatchSpanProcessor`` (a method descriptor of that class)."""

def set_attribute_for(fallback: Any) -> Any:
    """The native ``set_attribute`` of ``RecordingSpan`` (a method descriptor of that class)."""

def environ_attributes_for(constants: tuple[Any, ...]) -> Any:
    """The native ``server_environ_attributes`` of instrumentors/_http.py, given its module's
    globals and the Python function (which it calls for any request not of the usual shape)."""
