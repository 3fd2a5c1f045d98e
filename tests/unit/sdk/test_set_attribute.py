"""``RecordingSpan.set_attribute``: the native twin (``sdk/_speedups.c`` span_set_attribute)
stores what the Python method stores, drops what it drops and counts the same."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from telemetry_run.sdk import Diagnostics, SpanLimits
from telemetry_run.sdk.trace import provider
from telemetry_run.sdk.trace.span import RecordingSpan
from tests.native_twins import require_native
from tests.unit.sdk.conftest import make_recorder


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    """A str subclass: not a plain value, the Python method converts it."""


SETS: list[tuple[Any, Any]] = [
    ("text", "v"),
    ("long", "a value longer than the limit"),
    ("flag", True),
    ("count", 7),
    ("ratio", 0.5),
    ("largest", (1 << 63) - 1),
    ("smallest", -(1 << 63)),
    ("too large", 1 << 63),
    ("level", Level.HIGH),
    ("subclassed", Text("t")),
    ("list", [1, 2]),
    ("", "empty key"),
    (3, "key not a str"),
    (Text("subclassed key"), "v"),
    ("object", object()),
    ("text", "replaced"),  # a key already there: replaced even at the limit
    ("none", None),
]

LIMITS = [
    SpanLimits(),
    SpanLimits(max_attributes=3),
    SpanLimits(max_attributes=0),
    SpanLimits(max_attribute_length=4),
    SpanLimits(max_attributes=2, max_attribute_length=4),
]


def _record(limits: SpanLimits, native: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    method = provider._native_set_attribute if native else provider._python_set_attribute
    monkeypatch.setattr(RecordingSpan, "set_attribute", method)
    recorder = make_recorder(Diagnostics(), limits=limits)
    span = recorder.tracer.start_span("s", attributes={"start": 1})
    for key, value in SETS:
        span.set_attribute(key, value)
    span.end()
    span.set_attribute("after end", "ignored")
    (finished,) = recorder.spans
    return (
        dict(finished.attributes),
        [type(value) for value in finished.attributes.values()],
        finished.dropped_attributes,
        recorder.diagnostics.attributes_dropped.value,
    )


@pytest.mark.parametrize("limits", LIMITS, ids=repr)
def test_the_native_set_attribute_stores_drops_and_counts_as_python_does(
    limits: SpanLimits, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_native()
    assert RecordingSpan.set_attribute is provider._native_set_attribute
    python = _record(limits, False, monkeypatch)
    assert _record(limits, True, monkeypatch) == python


def test_the_limits_hold_for_the_usual_values() -> None:
    """What the fast path stores: each plain value as given, up to the limit, then dropped."""
    require_native()
    recorder = make_recorder(Diagnostics(), limits=SpanLimits(max_attributes=2))
    span = recorder.tracer.start_span("s")
    span.set_attribute("a", "x")
    span.set_attribute("b", 2)
    span.set_attribute("c", 3.0)  # no room
    span.set_attribute("a", "y")  # there already: replaced
    span.end()
    (finished,) = recorder.spans
    assert dict(finished.attributes) == {"a": "y", "b": 2}
    assert finished.dropped_attributes == 1
