"""The native twins of ``sdk/_speedups.c`` agree with their Python ones on generated input."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_run.sdk import _native
from telemetry_run.sdk.diagnostics import Diagnostics
from telemetry_run.sdk.propagation import tracecontext
from telemetry_run.sdk.trace import span
from tests.native_twins import require_native

require_native(module_level=True)
assert _native.speedups is not None
parse_traceparent = _native.speedups.parse_traceparent
format_traceparent = _native.speedups.format_traceparent
plain_attributes = _native.speedups.plain_attributes

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PATTERN = re.compile(tracecontext._TRACEPARENT)
# What a mutation may put in a header: every class the parser tells apart, and its neighbours.
CHARACTERS = "0123456789abcdefABCDEFg-/:`{ \t\x00é\u0100\U0001f600"


def _python_twin(header: str) -> tuple[int, str, int, int] | None:
    """What tracecontext's regular expression path reads from ``header``."""
    match = PATTERN.match(header)
    if match is None:
        return None
    trace_hex, span_hex, flags = match.groups()
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, trace_hex, span_id, int(flags, 16)


@st.composite
def _headers(draw: Any) -> str:
    """A valid header with some characters replaced, some cut or added, or any text."""
    if draw(st.booleans()):
        return str(draw(st.text(max_size=70)))
    header = list(draw(st.sampled_from([VALID, "ff" + VALID[2:], "00-" + "0" * 32 + VALID[35:]])))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(header) - 1))
        header[position] = draw(st.sampled_from(CHARACTERS))
    text = "".join(header)
    cut = draw(st.integers(0, 3))
    return text[: len(text) - cut] + draw(st.text(CHARACTERS, max_size=3))


@settings(max_examples=3000, deadline=None)
@given(_headers())
def test_parse_traceparent_reads_what_the_regular_expression_reads(header: str) -> None:
    assert parse_traceparent(header) == _python_twin(header)


@pytest.mark.parametrize(
    "header",
    [
        VALID,
        VALID + "-extra",  # a prefix match: what follows is the caller's to check
        "01" + VALID[2:],
        "fe" + VALID[2:],
        "ff" + VALID[2:],  # version ff is forbidden
        VALID.upper(),  # uppercase hex is invalid
        VALID[:3] + "0" * 32 + VALID[35:],  # zero trace id
        VALID[:36] + "0" * 16 + VALID[52:],  # zero parent id
        VALID[:3] + "0" * 31 + "1" + VALID[35:],  # the smallest trace id
        VALID[:3] + "f" * 32 + "-" + "f" * 16 + "-ff",  # the largest ids and flags
        VALID[:3] + "0" * 16 + "f" * 16 + VALID[35:],  # a trace id that fits 64 bits
        VALID[:54],  # one short
        VALID.replace("-", "_"),
        "",
    ],
)
def test_parse_traceparent_edges(header: str) -> None:
    assert parse_traceparent(header) == _python_twin(header)


def test_parse_traceparent_takes_only_a_str() -> None:
    with pytest.raises(TypeError):
        parse_traceparent(VALID.encode())  # type: ignore[arg-type]


@settings(max_examples=2000, deadline=None)
@given(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.integers(0, 255))
def test_format_traceparent_writes_what_the_f_string_writes(
    trace_id: int, span_id: int, flags: int
) -> None:
    trace_hex = trace_id.to_bytes(16).hex()
    expected = f"00-{trace_hex}-{span_id.to_bytes(8).hex()}{tracecontext._FLAGS_OUT[flags & 3]}"
    assert format_traceparent(trace_hex, span_id, flags) == expected
    assert parse_traceparent(expected) == (trace_id, trace_hex, span_id, flags & 3)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (("0" * 31, 1, 1), TypeError),  # not 32 characters
        ((b"0" * 32, 1, 1), TypeError),
        (("0" * 32, 2**64, 1), OverflowError),  # a span id beyond 64 bits
        (("0" * 32, -1, 1), OverflowError),
        (("0" * 32, 1), TypeError),
    ],
)
def test_format_traceparent_refuses_what_no_valid_context_holds(
    arguments: tuple[Any, ...], error: type[Exception]
) -> None:
    with pytest.raises(error):
        format_traceparent(*arguments)


class _Text(str):
    pass


class _Count(int):
    pass


# Keys and values of every kind clean_attributes tells apart: plain ones, subclasses, ints at
# and beyond the 64-bit bounds, sequences, None, bytes, objects.
_KEYS = st.one_of(
    st.text(max_size=5), st.builds(_Text, st.text(min_size=1, max_size=3)), st.integers(0, 3)
)
_VALUES = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.floats(allow_nan=False),
    st.integers(-(2**64), 2**64),
    st.sampled_from([-(2**63), 2**63 - 1, -(2**63) - 1, 2**63]),
    st.builds(_Count, st.integers(0, 9)),
    st.builds(_Text, st.text(max_size=3)),
    st.lists(st.integers(0, 3), max_size=3),
    st.none(),
    st.binary(max_size=3),
)


@settings(max_examples=2000, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=6), st.sampled_from([None, 2]))
def test_plain_attributes_lets_clean_attributes_keep_exactly_what_it_kept(
    attributes: dict[Any, Any], max_length: int | None
) -> None:
    native = span.clean_attributes(attributes, 128, max_length, Diagnostics())
    saved, span._native_plain = span._native_plain, None
    try:
        python = span.clean_attributes(attributes, 128, max_length, Diagnostics())
    finally:
        span._native_plain = saved
    assert native == python
    assert [type(v) for v in native[0].values()] == [type(v) for v in python[0].values()]
    copied = plain_attributes(attributes)
    plain = all(
        type(k) is str
        and k
        and (type(v) in (str, bool, float) or (type(v) is int and -(2**63) <= v < 2**63))
        for k, v in attributes.items()
    )
    assert (copied is not None) is plain
    if copied is not None:
        assert copied == attributes and copied is not attributes


def test_plain_attributes_takes_only_an_exact_dict() -> None:
    from collections import OrderedDict
    from types import MappingProxyType

    assert plain_attributes(OrderedDict(a=1)) is None
    assert plain_attributes(MappingProxyType({"a": 1})) is None
    assert plain_attributes([("a", 1)]) is None
    assert plain_attributes({}) == {}
