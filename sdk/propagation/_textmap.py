"""The propagator interface, the composite of several, and the process-wide propagator.

Instrumentation calls the module-level ``inject``/``extract`` on every request, so a broken
third-party propagator must cost one log record, never the request: its exception is contained
here and the context handed in comes back.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from telemetry_run.sdk import forking
from telemetry_run.sdk._log import logger as _logger
from telemetry_run.sdk.context import Context
from telemetry_run.sdk.propagation._carriers import (
    Getter,
    Setter,
    WSGIEnvironGetter,
    default_getter,
    default_setter,
)

__all__ = [
    "CompositePropagator",
    "TextMapPropagator",
    "extract",
    "get_global_textmap",
    "inject",
    "set_global_textmap",
]


CarrierT = TypeVar("CarrierT")

# The default getter/setter serve any carrier type as far as the type checker is concerned:
# they read dict-likes and never raise on anything else.
_default_getter: Getter[Any] = default_getter
_default_setter: Setter[Any] = default_setter


class TextMapPropagator(abc.ABC):
    """Moves context in and out of a carrier of string keys and values."""

    @abc.abstractmethod
    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = _default_getter,
    ) -> Context:
        """``context`` (an empty one if None) plus what the carrier holds; never raises."""

    @abc.abstractmethod
    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = _default_setter,
    ) -> None:
        """Write what ``context`` (the current one if None) holds into the carrier."""

    @property
    @abc.abstractmethod
    def fields(self) -> set[str]:
        """The carrier keys ``inject`` may set."""


_reported: set[tuple[type[object], str]] = set()


def _report(propagator: object, operation: str) -> None:
    """Log a propagator's failure once per propagator class and operation, not per request."""
    key = (type(propagator), operation)
    if key in _reported:
        return
    _reported.add(key)
    _logger.warning(
        "propagator %s.%s raised; its result is skipped (reported once)",
        type(propagator).__qualname__,
        operation,
        exc_info=True,
    )


class CompositePropagator(TextMapPropagator):
    """Runs several propagators in order; each extract sees the context the previous returned."""

    def __init__(self, propagators: Sequence[TextMapPropagator]):
        self._propagators = tuple(propagators)

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = _default_getter,
    ) -> Context:
        result = context  # None until a propagator returns one: each treats None as empty
        for propagator in self._propagators:
            try:
                result = propagator.extract(carrier, result, getter)
            except Exception:  # noqa: BLE001  # reported once; the others still run
                _report(propagator, "extract")
        return result if result is not None else Context()

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = _default_setter,
    ) -> None:
        for propagator in self._propagators:
            try:
                propagator.inject(carrier, context, setter)
            except Exception:  # noqa: BLE001  # reported once; the others still run
                _report(propagator, "inject")

    @property
    def fields(self) -> set[str]:
        names: set[str] = set()
        for propagator in self._propagators:
            try:
                names |= propagator.fields
            except Exception:  # noqa: BLE001  # reported once; the others still count
                _report(propagator, "fields")
        return names

    def __repr__(self) -> str:
        return f"CompositePropagator({list(self._propagators)!r})"


_global: TextMapPropagator | None = None
_global_lock = threading.Lock()


def _reinit_lock_after_fork() -> None:
    global _global_lock
    _global_lock = threading.Lock()


forking.register(_reinit_lock_after_fork)


# Where a WSGI environ holds the two headers of the default propagators.
_ENVIRON_TRACEPARENT: Final = "HTTP_TRACEPARENT"
_ENVIRON_BAGGAGE: Final = "HTTP_BAGGAGE"
_WSGI_GETTER: Final[type] = WSGIEnvironGetter  # compared by identity, never called here

#: The default propagator and its two members (exactly W3C trace context, then W3C baggage)
#: while it is the global one: ``tracecontext.inject_started`` then writes their headers in
#: one frame (it checks that ``_global`` is still this composite). None for any other.
_default: tuple[CompositePropagator, TextMapPropagator, TextMapPropagator] | None = None


def _default_of(
    propagator: TextMapPropagator,
) -> tuple[CompositePropagator, TextMapPropagator, TextMapPropagator] | None:
    """``propagator`` and its members if it is the default composite (exact classes)."""
    if type(propagator) is not CompositePropagator:
        return None
    # The default propagators import this module for the base class: looked up here.
    from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator
    from telemetry_run.sdk.propagation.tracecontext import TraceContextTextMapPropagator

    members = propagator._propagators
    if len(members) != 2:  # the default pair
        return None
    first, second = members
    if type(first) is TraceContextTextMapPropagator and type(second) is W3CBaggagePropagator:
        return propagator, first, second
    return None


def get_global_textmap() -> TextMapPropagator:
    """The process-wide propagator; by default W3C trace context then W3C baggage."""
    global _global, _default
    propagator = _global
    if propagator is None:
        # Built on first use: the default propagators import this module for the base class.
        from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator
        from telemetry_run.sdk.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )

        with _global_lock:
            if _global is None:
                default = CompositePropagator(
                    [TraceContextTextMapPropagator(), W3CBaggagePropagator()]
                )
                _default = _default_of(default)
                _global = default
            propagator = _global
    return propagator


def set_global_textmap(propagator: TextMapPropagator) -> None:
    global _global, _default
    _global = propagator
    _default = _default_of(propagator)


def extract(
    carrier: CarrierT,
    context: Context | None = None,
    getter: Getter[CarrierT] = _default_getter,
) -> Context:
    """Extract with the global propagator; a propagator that raises leaves ``context`` as is.

    A WSGI environ without ``traceparent`` and ``baggage`` headers (a request from outside the
    traced system) gives the context as is under the default propagators, as both would
    after looking: one frame instead of four on each such request.
    """
    propagator = _global if _global is not None else get_global_textmap()
    if (
        type(getter) is _WSGI_GETTER
        and type(carrier) is dict  # exactly: a subclass may read otherwise
        and _ENVIRON_TRACEPARENT not in carrier  # type: ignore[operator]
        and _ENVIRON_BAGGAGE not in carrier  # type: ignore[operator]
        and _default is not None
        and _default[0] is propagator
    ):
        return context if context is not None else Context()
    try:
        return propagator.extract(carrier, context, getter)
    except Exception:  # noqa: BLE001  # reported once; the request goes on untraced
        _report(propagator, "extract")
        return context if context is not None else Context()


def inject(
    carrier: CarrierT,
    context: Context | None = None,
    setter: Setter[CarrierT] = _default_setter,
) -> None:
    """Inject with the global propagator; a propagator that raises is reported, not raised."""
    propagator = _global if _global is not None else get_global_textmap()
    try:
        propagator.inject(carrier, context, setter)
    except Exception:  # noqa: BLE001  # reported once; the request goes on unpropagated
        _report(propagator, "inject")
