"""The instruments: what application and instrumentation code records through.

Recording never raises into the caller: a measurement the specification forbids (a negative
Counter increment, a negative Histogram value) is dropped with one diagnostic per instrument,
and a bug of ours is reported once through the SDK's diagnostics. An instrument whose name or
unit is invalid records nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

from telemetry_run.sdk.diagnostics import Diagnostics
from telemetry_run.sdk.metrics.stream import AsyncStream, SyncStream
from telemetry_run.sdk.trace.api import AttributeValue

__all__ = [
    "CallbackOptions",
    "Counter",
    "Gauge",
    "Histogram",
    "Instrument",
    "ObservableCounter",
    "ObservableGauge",
    "ObservableUpDownCounter",
    "Observation",
    "UpDownCounter",
]

Attributes = Mapping[str, AttributeValue] | None


class Observation(NamedTuple):
    """One value an observable instrument's callback reports, with its attributes."""

    value: float
    attributes: Attributes = None


class CallbackOptions(NamedTuple):
    """What a callback is told: how long it may take (milliseconds)."""

    timeout_millis: float = 10_000


Callback = Callable[[CallbackOptions], Iterable[Observation]]


class Instrument:
    """Name, unit and description, and the streams measurements go to (one per reader and
    matching view; none for an invalid or dropped instrument)."""

    #: Whether the instrument's sums only grow (Counter kinds).
    _monotonic = False

    def __init__(self, name: str, unit: str, description: str, diagnostics: Diagnostics) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self._diagnostics = diagnostics
        self._streams: tuple[SyncStream, ...] = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, unit={self.unit!r})"

    def _refuse(self, value: object, why: str) -> None:
        self._diagnostics.warn(
            f"metric-value:{self.name}",
            "%s %s: the value %r was dropped (%s)",
            type(self).__name__,
            self.name,
            value,
            why,
        )

    def _failed(self, value: object, exc: Exception) -> None:
        if not isinstance(value, int | float):  # the caller's mistake, not a bug of ours
            self._refuse(value, f"{type(value).__name__} is not a number")
            return
        self._diagnostics.internal_error(f"{type(self).__name__} {self.name}", exc)


def _is_number(value: object) -> bool:
    """int and float at once; other real numbers (numpy's, Decimal is not one) by the ABC."""
    if isinstance(value, int | float):
        return True
    import numbers

    return isinstance(value, numbers.Real)


class Counter(Instrument):
    """Increments that only grow (requests served, bytes sent)."""

    _monotonic = True

    def add(self, amount: float, attributes: Attributes = None) -> None:
        try:
            if amount < 0:
                self._refuse(amount, "a Counter only takes non-negative increments")
                return
            for stream in self._streams:
                stream.record(amount, attributes)
        except Exception as exc:  # noqa: BLE001  # never into the app
            self._failed(amount, exc)


class UpDownCounter(Instrument):
    """Increments and decrements (items in a queue, connections open)."""

    def add(self, amount: float, attributes: Attributes = None) -> None:
        if not _is_number(amount):
            self._refuse(amount, f"{type(amount).__name__} is not a number")
            return
        try:
            for stream in self._streams:
                stream.record(amount, attributes)
        except Exception as exc:  # noqa: BLE001  # never into the app
            self._failed(amount, exc)


class Histogram(Instrument):
    """A distribution of values (request durations, payload sizes)."""

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        diagnostics: Diagnostics,
        boundaries: Sequence[float] | None = None,
    ) -> None:
        super().__init__(name, unit, description, diagnostics)
        #: The bucket boundaries the code that created it advised (a view's win over it).
        self.advised_boundaries = tuple(boundaries) if boundaries is not None else None

    def record(self, amount: float, attributes: Attributes = None) -> None:
        try:
            if amount < 0:
                self._refuse(amount, "a Histogram only takes non-negative values")
                return
            for stream in self._streams:
                stream.record(amount, attributes)
        except Exception as exc:  # noqa: BLE001  # never into the app
            self._failed(amount, exc)


class Gauge(Instrument):
    """A current value set when it changes (a temperature, a configured size)."""

    def set(self, amount: float, attributes: Attributes = None) -> None:
        if not _is_number(amount):
            self._refuse(amount, f"{type(amount).__name__} is not a number")
            return
        try:
            for stream in self._streams:
                stream.record(amount, attributes)
        except Exception as exc:  # noqa: BLE001  # never into the app
            self._failed(amount, exc)


class _Observable(Instrument):
    """Values read by callbacks at each collection."""

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        diagnostics: Diagnostics,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        super().__init__(name, unit, description, diagnostics)
        self.callbacks: list[Callback] = list(callbacks)
        self._async_streams: list[list[AsyncStream]] = []


class ObservableCounter(_Observable):
    """A monotonic total read by a callback (CPU time used, bytes received so far)."""

    _monotonic = True


class ObservableUpDownCounter(_Observable):
    """A total that goes up and down, read by a callback (memory in use)."""


class ObservableGauge(_Observable):
    """A current value read by a callback (a queue's length)."""


SYNCHRONOUS = (Counter, UpDownCounter, Histogram, Gauge)
OBSERVABLE = (ObservableCounter, ObservableUpDownCounter, ObservableGauge)
