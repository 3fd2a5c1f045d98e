"""W3C Trace Context propagation: the spec's vectors, its test-suite edge cases, and properties."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_run.sdk import ALWAYS_OFF, TracerProvider
from telemetry_run.sdk.context import Context, attach, detach, set_value
from telemetry_run.sdk.propagation import HeaderListGetter
from telemetry_run.sdk.propagation.tracecontext import TraceContextTextMapPropagator
from telemetry_run.sdk.trace import Tracer
from telemetry_run.sdk.trace.api import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
)
from telemetry_run.sdk.trace.current import get_current_span, set_span_in_context
from telemetry_run.sdk.trace.sampling import ParentBased
from tests.native_twins import twins

header_twins = twins(
    "telemetry_run.sdk.propagation.tracecontext", "_native_parse", "_native_format"
)

PROPAGATOR = TraceContextTextMapPropagator()
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SUITE_TRACE = "12345678901234567890123456789012"
SUITE_SPAN = "1234567890123456"

# Independent oracles, written from the spec text rather than from the implementation.
INJECTED_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]\Z")
TS_KEY = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})\Z"
)
TS_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]\Z")


def remote(carrier: object, context: Context | None = None) -> SpanContext | None:
    """The extracted span context, or None when extraction found nothing valid."""
    result = PROPAGATOR.extract(carrier, context)
    span_context = get_current_span(result).get_span_context()
    return span_context if span_context.is_valid else None


def context_with(span_context: SpanContext) -> Context:
    return set_span_in_context(NonRecordingSpan(span_context), Context())


def injected(span_context: SpanContext) -> dict[str, str]:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context_with(span_context))
    return carrier


def suite_header(version: str = "00", flags: str = "01", rest: str = "") -> str:
    return f"{version}-{SUITE_TRACE}-{SUITE_SPAN}-{flags}{rest}"


# -- the spec's examples -------------------------------------------------------------------


def test_spec_example_sampled() -> None:
    span_context = remote({"traceparent": VALID})
    assert span_context is not None
    assert span_context.trace_id == TRACE_ID
    assert span_context.span_id == SPAN_ID
    assert span_context.trace_flags == 1
    assert span_context.trace_flags.sampled
    assert span_context.is_remote


def test_spec_example_not_sampled() -> None:
    span_context = remote({"traceparent": VALID[:-2] + "00"})
    assert span_context is not None
    assert not span_context.trace_flags.sampled


def test_spec_example_with_tracestate() -> None:
    span_context = remote(
        {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
            "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        }
    )
    assert span_context is not None
    assert span_context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert list(span_context.trace_state.items()) == [
        ("rojo", "00f067aa0ba902b7"),
        ("congo", "t61rcWkgMzE"),
    ]


def test_extracted_span_is_a_non_recording_remote_parent() -> None:
    span = get_current_span(PROPAGATOR.extract({"traceparent": VALID}))
    assert isinstance(span, NonRecordingSpan)
    assert not span.is_recording()


def test_extracted_span_context_is_what_the_constructor_builds() -> None:
    """The propagator builds the remote context without SpanContext's own checks: every field
    (remote, valid, flags, state) must still be what the checked constructor gives."""
    carrier = {"traceparent": VALID, "tracestate": "congo=t61rcWkgMzE"}
    extracted = get_current_span(PROPAGATOR.extract(carrier)).get_span_context()
    state = TraceState([("congo", "t61rcWkgMzE")])
    built = SpanContext(TRACE_ID, SPAN_ID, True, TraceFlags(1), state)
    assert extracted == built
    assert (extracted.is_remote, extracted.is_valid) == (True, True)
    assert type(extracted.trace_flags) is TraceFlags and extracted.trace_flags.sampled
    # a child started under it is a child of the remote parent, in the same trace
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("child", context=PROPAGATOR.extract(carrier)) as child:
        assert child.parent == built
        assert child.get_span_context().trace_id == TRACE_ID


def test_inject_pads_the_largest_and_smallest_ids() -> None:
    for trace_id, span_id in ((1, 1), (2**128 - 1, 2**64 - 1), (1 << 64, 1 << 8)):
        carrier: dict[str, str] = {}
        context = SpanContext(trace_id, span_id, True, TraceFlags(1))
        PROPAGATOR.inject(carrier, set_span_in_context(NonRecordingSpan(context)))
        assert carrier["traceparent"] == f"00-{trace_id:032x}-{span_id:016x}-01"


# -- malformed traceparent: restart the trace ------------------------------------------------

INVALID_TRACEPARENTS = [
    pytest.param("", id="empty"),
    pytest.param(VALID[:-1], id="short"),
    pytest.param(VALID.upper(), id="uppercase-all"),
    pytest.param(VALID.replace("4bf92f", "4BF92F"), id="uppercase-trace-id"),
    pytest.param(VALID.replace("00f067aa0ba902b7", "00F067AA0BA902B7"), id="uppercase-span-id"),
    pytest.param(VALID[:-2] + "0A", id="uppercase-flags"),
    pytest.param("ff" + VALID[2:], id="version-ff"),
    pytest.param("FF" + VALID[2:], id="version-FF"),
    pytest.param("0A" + VALID[2:], id="version-uppercase"),
    pytest.param(suite_header(rest="."), id="v00-trailing-dot"),
    pytest.param(suite_header(rest="-what-the-future-will-be-like"), id="v00-extra-fields"),
    pytest.param(suite_header(rest="-"), id="v00-trailing-dash"),
    pytest.param(suite_header(version="cc", rest=".what-the-future"), id="future-no-dash"),
    pytest.param(suite_header(version="cc", rest="x"), id="future-flags-not-ended"),
    pytest.param(suite_header(version="cc")[:-1], id="future-short"),
    pytest.param(".0" + suite_header()[2:], id="version-illegal-1"),
    pytest.param("0." + suite_header()[2:], id="version-illegal-2"),
    pytest.param("0" + suite_header(), id="version-too-long"),
    pytest.param("00" + suite_header(), id="version-four-digits"),
    pytest.param(suite_header()[1:], id="version-too-short"),
    pytest.param(f"00-{'0' * 32}-{SUITE_SPAN}-01", id="trace-id-zero"),
    pytest.param(f"00-{SUITE_TRACE}-{'0' * 16}-01", id="span-id-zero"),
    pytest.param(f"00-.{SUITE_TRACE[1:]}-{SUITE_SPAN}-01", id="trace-id-illegal-first"),
    pytest.param(f"00-{SUITE_TRACE[:-1]}.-{SUITE_SPAN}-01", id="trace-id-illegal-last"),
    pytest.param(f"00-{SUITE_TRACE}3-{SUITE_SPAN}-01", id="trace-id-too-long"),
    pytest.param(f"00-{SUITE_TRACE[:-1]}-{SUITE_SPAN}-01", id="trace-id-too-short"),
    pytest.param(f"00-{SUITE_TRACE}-.{SUITE_SPAN[1:]}-01", id="span-id-illegal"),
    pytest.param(f"00-{SUITE_TRACE}-{SUITE_SPAN}7-01", id="span-id-too-long"),
    pytest.param(f"00-{SUITE_TRACE}-{SUITE_SPAN[:-1]}-01", id="span-id-too-short"),
    pytest.param(suite_header(flags=".0"), id="flags-illegal-1"),
    pytest.param(suite_header(flags="0."), id="flags-illegal-2"),
    pytest.param(suite_header(flags="001"), id="flags-too-long"),
    pytest.param(suite_header(flags="1"), id="flags-too-short"),
    pytest.param(suite_header().replace("-", "_"), id="wrong-delimiter"),
    pytest.param(f"00-0x{SUITE_TRACE[2:]}-{SUITE_SPAN}-01", id="hex-prefix-in-trace-id"),
    pytest.param(f"00-{SUITE_TRACE[:16]}_{SUITE_TRACE[17:]}-{SUITE_SPAN}-01", id="underscore"),
    pytest.param(f"00-{SUITE_TRACE}-+{SUITE_SPAN[1:]}-01", id="plus-sign"),
    pytest.param(f"00-{chr(0x661) * 32}-{SUITE_SPAN}-01", id="non-ascii-digits"),
    pytest.param(suite_header() + "\n", id="trailing-newline"),
    pytest.param(f"{suite_header()},{suite_header()}", id="two-values-joined"),
]


@pytest.mark.parametrize("header", INVALID_TRACEPARENTS)
def test_invalid_traceparent_leaves_the_given_context_unchanged(header: str) -> None:
    given_context = set_value("unrelated", 1, Context())
    result = PROPAGATOR.extract({"traceparent": header, "tracestate": "foo=1"}, given_context)
    assert result is given_context


@pytest.mark.parametrize("header", INVALID_TRACEPARENTS)
def test_invalid_traceparent_without_context_gives_an_empty_one(header: str) -> None:
    result = PROPAGATOR.extract({"traceparent": header})
    assert isinstance(result, Context)
    assert dict(result) == {}


# -- future versions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(suite_header(version="cc"), id="55-chars"),
        pytest.param(
            suite_header(version="cc", rest="-what-the-future-will-be-like"), id="extra-fields"
        ),
        pytest.param(suite_header(version="01", rest="-"), id="trailing-dash"),
        pytest.param(suite_header(version="fe", rest="-XYZ-!@#"), id="opaque-extra-fields"),
    ],
)
def test_higher_version_is_read_at_fixed_positions(header: str) -> None:
    span_context = remote({"traceparent": header})
    assert span_context is not None
    assert f"{span_context.trace_id:032x}" == SUITE_TRACE
    assert f"{span_context.span_id:016x}" == SUITE_SPAN
    assert span_context.trace_flags == 1


def test_higher_version_is_reinjected_as_version_00_without_extra_fields() -> None:
    span_context = remote(
        {"traceparent": suite_header(version="cc", flags="03", rest="-what-the-future")}
    )
    assert span_context is not None
    assert injected(span_context)["traceparent"] == suite_header(flags="03")


# -- optional whitespace, header names, several headers ------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        " " + suite_header(),
        "\t" + suite_header(),
        suite_header() + " ",
        suite_header() + "\t",
        "\t " + suite_header() + " \t",
        " " + suite_header(version="cc", rest="-extra") + "\t",
    ],
)
def test_surrounding_optional_whitespace_is_ignored(header: str) -> None:
    span_context = remote({"traceparent": header})
    assert span_context is not None
    assert f"{span_context.trace_id:032x}" == SUITE_TRACE


@pytest.mark.parametrize("name", ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"])
def test_header_name_in_any_case(name: str) -> None:
    span_context = remote({name: suite_header(), "TraceState": "foo=1"})
    assert span_context is not None
    assert f"{span_context.trace_id:032x}" == SUITE_TRACE
    assert span_context.trace_state.get("foo") == "1"


@pytest.mark.parametrize("name", ["trace-parent", "trace.parent", "trace_parent"])
def test_other_header_names_are_not_traceparent(name: str) -> None:
    assert remote({name: suite_header()}) is None


def test_duplicated_traceparent_is_invalid() -> None:
    other = suite_header().replace("9012-", "9011-")
    assert remote({"traceparent": [other, suite_header()]}) is None
    headers = [("traceparent", other), ("traceparent", suite_header())]
    assert PROPAGATOR.extract(headers, getter=HeaderListGetter()) == Context()


def test_single_value_in_a_list_is_read() -> None:
    span_context = remote({"traceparent": [suite_header()], "tracestate": ["a=1", "b=2"]})
    assert span_context is not None
    assert list(span_context.trace_state.items()) == [("a", "1"), ("b", "2")]


def test_tracestate_without_traceparent_is_discarded() -> None:
    given_context = Context()
    assert PROPAGATOR.extract({"tracestate": "foo=1"}, given_context) is given_context


def test_tracestate_with_invalid_traceparent_is_discarded() -> None:
    result = PROPAGATOR.extract({"traceparent": "00-xyz", "tracestate": "foo=1"})
    assert get_current_span(result).get_span_context().trace_state == TraceState()


def test_invalid_tracestate_does_not_affect_traceparent() -> None:
    span_context = remote({"traceparent": suite_header(), "tracestate": "FOO=1"})
    assert span_context is not None
    assert f"{span_context.trace_id:032x}" == SUITE_TRACE
    assert len(span_context.trace_state) == 0


def test_extract_keeps_the_other_values_of_the_given_context() -> None:
    given_context = set_value("unrelated", 42, Context())
    result = PROPAGATOR.extract({"traceparent": VALID}, given_context)
    assert result["unrelated"] == 42
    assert get_current_span(result).get_span_context().trace_id == TRACE_ID
    assert get_current_span(given_context).get_span_context().is_valid is False


def test_extracted_flags_keep_unknown_bits() -> None:
    span_context = remote({"traceparent": suite_header(flags="ff")})
    assert span_context is not None
    assert span_context.trace_flags == 0xFF
    assert isinstance(span_context.trace_flags, TraceFlags)
    assert span_context.trace_flags.sampled


@pytest.mark.parametrize("carrier", [None, 42, "traceparent", ["traceparent"], object()])
def test_odd_carriers_extract_nothing(carrier: object) -> None:
    assert PROPAGATOR.extract(carrier) == Context()


def test_odd_values_extract_nothing() -> None:
    for value in (None, 42, b"00", [1], {"a": 1}, (VALID, VALID)):
        assert remote({"traceparent": value}) is None


def test_bytes_value_is_decoded() -> None:
    assert remote({"traceparent": VALID.encode()}) is not None


# -- inject -----------------------------------------------------------------------------------


def test_inject_writes_version_00_lowercase() -> None:
    carrier = injected(SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags.SAMPLED))
    assert carrier == {"traceparent": VALID}


def test_inject_pads_small_ids() -> None:
    carrier = injected(SpanContext(1, 2, False))
    assert carrier["traceparent"] == f"00-{'0' * 31}1-{'0' * 15}2-00"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [(0x00, "00"), (0x01, "01"), (0x02, "02"), (0x03, "03"), (0xFC, "00"), (0xFF, "03")],
)
def test_inject_sends_the_sampled_and_random_bits_only(flags: int, expected: str) -> None:
    # Level 2: random-trace-id (0x02) is defined; unknown bits are sent as zero.
    carrier = injected(SpanContext(TRACE_ID, SPAN_ID, True, TraceFlags(flags)))
    assert carrier["traceparent"].endswith("-" + expected)


@pytest.mark.parametrize("flags", ["00", "01", "02", "03", "ff", "a6"])
def test_extract_keeps_the_whole_flags_byte(flags: str) -> None:
    span_context = remote({"traceparent": suite_header(flags=flags)})
    assert span_context is not None
    assert span_context.trace_flags == int(flags, 16)
    assert span_context.trace_flags.random_trace_id is bool(int(flags, 16) & 2)


def test_inject_writes_tracestate_only_when_not_empty() -> None:
    assert "tracestate" not in injected(SpanContext(TRACE_ID, SPAN_ID, False))
    state = TraceState([("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")])
    carrier = injected(SpanContext(TRACE_ID, SPAN_ID, False, trace_state=state))
    assert carrier["tracestate"] == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


@pytest.mark.parametrize(
    "span_context",
    [
        SpanContext(0, SPAN_ID, False),
        SpanContext(TRACE_ID, 0, False),
        SpanContext(1 << 128, SPAN_ID, False),
        SpanContext(TRACE_ID, 1 << 64, False),
    ],
)
def test_inject_skips_invalid_span_contexts(span_context: SpanContext) -> None:
    assert injected(span_context) == {}


def test_inject_without_a_span_writes_nothing() -> None:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, Context())
    assert carrier == {}


def test_inject_ignores_a_non_span_under_the_span_key() -> None:
    from telemetry_run.sdk.trace.current import SPAN_KEY

    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, set_value(SPAN_KEY, "not a span", Context()))
    assert carrier == {}


def test_inject_uses_the_current_context_by_default() -> None:
    token = attach(context_with(SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags.SAMPLED)))
    try:
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier)
    finally:
        detach(token)
    assert carrier == {"traceparent": VALID}


def test_inject_alternates_between_traces() -> None:
    first = injected(SpanContext(TRACE_ID, SPAN_ID, False))["traceparent"]
    second = injected(SpanContext(TRACE_ID + 1, SPAN_ID, False))["traceparent"]
    third = injected(SpanContext(TRACE_ID, SPAN_ID + 1, False))["traceparent"]
    assert first[3:35] == f"{TRACE_ID:032x}"
    assert second[3:35] == f"{TRACE_ID + 1:032x}"
    assert third[3:35] == f"{TRACE_ID:032x}"
    assert third[36:52] == f"{SPAN_ID + 1:016x}"


def test_inject_through_a_custom_setter() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[object, str, str]] = []

        def set(self, carrier: object, key: str, value: str) -> None:
            self.calls.append((carrier, key, value))

    recorder = Recorder()
    carrier: dict[str, str] = {}
    state = TraceState([("a", "1")])
    PROPAGATOR.inject(
        carrier,
        context_with(SpanContext(TRACE_ID, SPAN_ID, False, 1, state)),
        setter=recorder,
    )
    assert recorder.calls == [(carrier, "traceparent", VALID), (carrier, "tracestate", "a=1")]
    assert carrier == {}


def test_fields() -> None:
    assert PROPAGATOR.fields == {"traceparent", "tracestate"}


# -- properties -------------------------------------------------------------------------------

LCALPHA = "abcdefghijklmnopqrstuvwxyz"
KEYCHAR = LCALPHA + "0123456789_-*/"
NBLK = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ",=")
VALUE_CHAR = " " + NBLK


def simple_keys(max_size: int = 255) -> st.SearchStrategy[str]:
    return st.builds(
        str.__add__,
        st.sampled_from(LCALPHA),
        st.text(KEYCHAR, max_size=max_size),
    )


def tenant_keys(tenant_size: int = 240, system_size: int = 13) -> st.SearchStrategy[str]:
    return st.builds(
        lambda t, tr, s, sr: f"{t}{tr}@{s}{sr}",
        st.sampled_from(LCALPHA + "0123456789"),
        st.text(KEYCHAR, max_size=tenant_size),
        st.sampled_from(LCALPHA),
        st.text(KEYCHAR, max_size=system_size),
    )


def values(max_size: int = 255) -> st.SearchStrategy[str]:
    return st.builds(str.__add__, st.text(VALUE_CHAR, max_size=max_size), st.sampled_from(NBLK))


def trace_states(
    max_members: int = 32, key_size: int = 255, value_size: int = 255
) -> st.SearchStrategy[TraceState]:
    keys = st.one_of(simple_keys(key_size), tenant_keys(min(key_size, 240), min(key_size, 13)))
    members = st.lists(
        st.tuples(keys, values(value_size)),
        max_size=max_members,
        unique_by=lambda member: member[0],
    )
    return members.map(TraceState)


span_contexts = st.builds(
    SpanContext,
    trace_id=st.integers(1, (1 << 128) - 1),
    span_id=st.integers(1, (1 << 64) - 1),
    is_remote=st.just(True),
    trace_flags=st.sampled_from([TraceFlags(0), TraceFlags(1)]),
    trace_state=trace_states(max_members=8, key_size=24, value_size=23),
)


@given(span_contexts)
def test_inject_then_extract_round_trips(span_context: SpanContext) -> None:
    carrier = injected(span_context)
    assert INJECTED_TRACEPARENT.match(carrier["traceparent"])
    extracted = remote(carrier)
    assert extracted == span_context
    assert list(extracted.trace_state.items()) == list(span_context.trace_state.items())


@given(trace_states())
def test_any_grammar_valid_tracestate_is_extracted_whole(state: TraceState) -> None:
    span_context = remote({"traceparent": VALID, "tracestate": state.to_header()})
    assert span_context is not None
    assert list(span_context.trace_state.items()) == list(state.items())


def oracle_traceparent(header: str) -> tuple[str, str, str] | None:
    """W3C 3.2 and its versioning rules, spelled out independently of the implementation."""
    header = header.strip(" \t")
    match = re.match(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", header)
    if match is None or len(header) < 55:
        return None
    version, trace, span, flags = match.groups()
    if version == "ff" or set(trace) == {"0"} or set(span) == {"0"}:
        return None
    if version == "00" and len(header) != 55:
        return None
    if len(header) > 55 and header[55] != "-":
        return None
    return trace, span, flags


def mutated_headers() -> st.SearchStrategy[str]:
    """Valid headers with a few characters replaced, inserted or removed, plus affixes."""
    base = st.builds(
        lambda version, trace, span, flags, rest: f"{version}-{trace}-{span}-{flags}{rest}",
        st.sampled_from(["00", "01", "cc", "fe", "ff", "0f", "F0"]),
        st.sampled_from([SUITE_TRACE, "0" * 32, "4bf92f3577b34da6a3ce929d0e0e4736"]),
        st.sampled_from([SUITE_SPAN, "0" * 16, "00f067aa0ba902b7"]),
        st.sampled_from(["00", "01", "ff", "0A"]),
        st.sampled_from(["", "-", "-x", ".x", " ", "\t", "\n", "-00-11"]),
    )

    def mutate(header: str, edits: list[tuple[int, int, str]]) -> str:
        for position, kind, text in edits:
            index = position % (len(header) + 1)
            if kind == 0:
                header = header[:index] + text + header[index + 1 :]
            elif kind == 1:
                header = header[:index] + text + header[index:]
            else:
                header = header[:index] + header[index + 1 :]
        return header

    edits = st.lists(
        st.tuples(st.integers(0, 80), st.integers(0, 2), st.text(max_size=2)), max_size=3
    )
    prefixes = st.sampled_from(["", " ", "\t", " \t"])
    return st.builds(lambda p, h, e: p + mutate(h, e), prefixes, base, edits)


headers_text = st.one_of(st.text(), mutated_headers())
header_values = st.one_of(
    headers_text, st.lists(headers_text, max_size=3), st.none(), st.binary(max_size=60)
)


def assert_well_formed(span_context: SpanContext) -> None:
    assert span_context.is_valid
    assert span_context.is_remote
    state = span_context.trace_state
    assert len(state) <= 32
    for key, value in state.items():
        assert TS_KEY.match(key), key
        assert TS_VALUE.match(value), value
    carrier = injected(span_context)
    assert len(carrier["traceparent"]) == 55
    assert INJECTED_TRACEPARENT.match(carrier["traceparent"])
    if "tracestate" in carrier:
        header = carrier["tracestate"]
        assert len(header) <= 512
        members = header.split(",")
        assert len(members) <= 32
        for member in members:
            key, _, value = member.partition("=")
            assert TS_KEY.match(key)
            assert TS_VALUE.match(value)


@settings(max_examples=400)
@given(traceparent=header_values, tracestate=header_values)
def test_arbitrary_headers_never_raise_nor_yield_an_invalid_context(
    traceparent: object, tracestate: object
) -> None:
    carrier = {"traceparent": traceparent, "tracestate": tracestate}
    span_context = remote(carrier)
    single = traceparent[0] if isinstance(traceparent, list) and len(traceparent) == 1 else None
    if isinstance(traceparent, str | bytes):
        single = traceparent
    if isinstance(single, bytes):
        single = single.decode("latin-1")
    expected = oracle_traceparent(single) if isinstance(single, str) else None
    if expected is None:
        assert span_context is None
        return
    assert span_context is not None
    assert (f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}") == expected[:2]
    assert span_context.trace_flags == int(expected[2], 16)
    assert_well_formed(span_context)


# -- the peer ---------------------------------------------------------------------------------


def random_valid_header(rng: random.Random) -> tuple[str, str]:
    version = "00" if rng.random() < 0.6 else f"{rng.randrange(1, 255):02x}"
    trace_id = rng.randrange(1, 1 << 128)
    span_id = rng.randrange(1, 1 << 64)
    header = f"{version}-{trace_id:032x}-{span_id:016x}-{rng.randrange(256):02x}"
    if version != "00" and rng.random() < 0.5:
        header += "-" + "-".join(f"{rng.randrange(1 << 32):x}" for _ in range(rng.randrange(3)))
    members: list[str] = []
    keys: set[str] = set()
    for _ in range(rng.randrange(6)):
        key = rng.choice(LCALPHA) + "".join(rng.choices(KEYCHAR, k=rng.randrange(12)))
        if rng.random() < 0.3:
            key += "@" + rng.choice(LCALPHA) + "".join(rng.choices(KEYCHAR, k=rng.randrange(8)))
        if key in keys:
            continue
        keys.add(key)
        value = "".join(rng.choices(VALUE_CHAR, k=rng.randrange(30))) + rng.choice(NBLK)
        members.append(f"{key}={value}")
    return header, ",".join(members)


def test_extract_agrees_with_opentelemetry() -> None:
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace.propagation.tracecontext import (
        TraceContextTextMapPropagator as OtelPropagator,
    )

    peer = OtelPropagator()
    rng = random.Random(20240607)
    for _ in range(300):
        traceparent, tracestate = random_valid_header(rng)
        carrier = {"traceparent": traceparent}
        if tracestate:
            carrier["tracestate"] = tracestate
        theirs = otel_trace.get_current_span(peer.extract(carrier)).get_span_context()
        ours = remote(carrier)
        assert theirs.is_valid, traceparent
        assert ours is not None, traceparent
        assert ours.trace_id == theirs.trace_id
        assert ours.span_id == theirs.span_id
        assert int(ours.trace_flags) == int(theirs.trace_flags)
        assert list(ours.trace_state.items()) == list(theirs.trace_state.items())
        assert list(ours.trace_state.items()) != [] or not tracestate


def test_without_a_context_the_current_one_is_not_the_base() -> None:
    current = set_value("unrelated", 1, context_with(SpanContext(7, 8, False)))
    token = attach(current)
    try:
        found = PROPAGATOR.extract({"traceparent": VALID})
        nothing = PROPAGATOR.extract({"traceparent": "garbage"})
    finally:
        detach(token)
    assert "unrelated" not in found
    assert get_current_span(found).get_span_context().trace_id == TRACE_ID
    assert nothing == Context()


def noisy_tracestates() -> st.SearchStrategy[str]:
    """Headers built from valid and invalid members with every kind of separator."""
    valid_member = st.builds(
        lambda k, v: f"{k}={v}", st.one_of(simple_keys(12), tenant_keys(8, 4)), values(12)
    )
    invalid_member = st.sampled_from(["K=1", "a=", "a", "=1", "a=b=c", "a=1 x,", "@a=1", "a=\x7f"])
    member = st.one_of(valid_member, valid_member, invalid_member, st.sampled_from(["a=1", "a= 1"]))
    separator = st.sampled_from([",", ",", ", ", " ,", ",,", "\t,\t", ", ,"])
    parts = st.lists(st.tuples(member, separator), max_size=35)
    affix = st.sampled_from(["", " ", "\t", ","])
    noisy = st.builds(
        lambda before, items, after: before + "".join(m + s for m, s in items)[:-1] + after,
        affix,
        parts,
        affix,
    )
    # As we write them: only valid members and bare commas, sometimes a repeated key or 33.
    plain_keys = st.sampled_from(["a", "b", "c"]).map(lambda k: f"{k}=1")
    canonical = st.lists(st.one_of(valid_member, plain_keys), min_size=1, max_size=34).map(",".join)
    return st.one_of(noisy, canonical)


@settings(max_examples=400)
@given(noisy_tracestates())
def test_tracestate_extraction_agrees_with_trace_state_from_header(header: str) -> None:
    span_context = remote({"traceparent": VALID, "tracestate": header})
    assert span_context is not None
    expected = TraceState.from_header([header])
    assert list(span_context.trace_state.items()) == list(expected.items())


def passed_on(incoming: str, change: object = None) -> str | None:
    """The ``tracestate`` a service injects after extracting ``incoming`` (changed or not)."""
    span_context = remote({"traceparent": VALID, "tracestate": incoming})
    assert span_context is not None
    state = span_context.trace_state
    if callable(change):
        state = change(state)
    outgoing = SpanContext(TRACE_ID, SPAN_ID, True, TraceFlags(1), state)
    return injected(outgoing).get("tracestate")


@settings(max_examples=300)
@given(noisy_tracestates())
def test_tracestate_passed_on_after_extract_is_the_list_formatted_afresh(header: str) -> None:
    # The oracle: the same members in a TraceState built from scratch, which has no kept text.
    span_context = remote({"traceparent": VALID, "tracestate": header})
    assert span_context is not None
    fresh = TraceState(list(span_context.trace_state.items()))
    expected = injected(SpanContext(TRACE_ID, SPAN_ID, True, TraceFlags(1), fresh))
    assert passed_on(header) == expected.get("tracestate")


@pytest.mark.parametrize(
    ("incoming", "outgoing"),
    [
        ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        (" rojo=1 ,\tcongo=2", "rojo=1,congo=2"),
        ("rojo=1,,congo=2,", "rojo=1,congo=2"),
        ("rojo=1,congo=2,rojo=3", "rojo=1,congo=2"),
    ],
)
def test_tracestate_is_passed_on_in_its_normal_form(incoming: str, outgoing: str) -> None:
    assert passed_on(incoming) == outgoing


def test_a_changed_tracestate_is_passed_on_with_the_change() -> None:
    incoming = "rojo=1,congo=2"
    assert passed_on(incoming, lambda s: s.add("ours", "x")) == "ours=x,rojo=1,congo=2"
    assert passed_on(incoming, lambda s: s.update("congo", "3")) == "congo=3,rojo=1"
    assert passed_on(incoming, lambda s: s.delete("rojo")) == "congo=2"


def test_a_tracestate_over_512_characters_is_still_cut_when_passed_on() -> None:
    members = [f"k{i}={'v' * 40}" for i in range(20)]  # 20 members of 44 characters: 899
    outgoing = passed_on(",".join(members))
    assert outgoing is not None
    assert len(outgoing) <= 512
    assert outgoing == ",".join(members[: len(outgoing.split(","))])


def test_a_dict_of_many_lowercase_headers() -> None:
    carrier = {
        "host": "example.com",
        "accept": "*/*",
        "user-agent": "test",
        "traceparent": VALID,
        "x-request-id": "abc",
        "tracestate": "rojo=00f067aa0ba902b7",
    }
    span_context = remote(carrier)
    assert span_context is not None
    assert span_context.trace_state.to_header() == "rojo=00f067aa0ba902b7"
    assert remote({**carrier, "tracestate": None}) is not None


# -- random-trace-id (W3C Level 2) through the SDK's own spans ------------------------------


class _SequentialIds:
    """A plugin id generator: its trace ids are not random, so they must not be flagged so."""

    def __init__(self) -> None:
        self.next = 0

    def generate_span_id(self) -> int:
        self.next += 1
        return self.next

    def generate_trace_id(self) -> int:
        self.next += 1
        return self.next


def _outgoing(tracer: Tracer, incoming: dict[str, str] | None) -> str:
    parent = PROPAGATOR.extract(incoming) if incoming is not None else Context()
    span = tracer.start_span("client", parent)
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, set_span_in_context(span, Context()))
    span.end()
    return carrier["traceparent"]


@pytest.mark.parametrize(
    ("incoming_flags", "sampler", "expected"),
    [
        (None, None, "03"),  # a trace id we generated: random
        (None, "off", "02"),
        ("01", None, "01"),  # an incoming non-random id stays non-random
        ("03", None, "03"),  # an incoming random id stays random
        ("02", None, "02"),  # ... sampled or not
        ("ff", None, "03"),  # unknown bits are not passed on
        ("fd", None, "01"),
    ],
)
def test_outgoing_flags_keep_the_random_trace_id_bit_of_the_trace(
    incoming_flags: str | None, sampler: str | None, expected: str
) -> None:
    provider = TracerProvider(
        sampler=ParentBased(ALWAYS_OFF) if sampler == "off" else None, shutdown_on_exit=False
    )
    incoming = (
        None if incoming_flags is None else {"traceparent": suite_header(flags=incoming_flags)}
    )
    header = _outgoing(provider.get_tracer("t"), incoming)
    assert header.endswith("-" + expected)
    if incoming is not None:
        assert header.split("-")[1] == SUITE_TRACE


def test_trace_ids_of_a_plugin_generator_are_not_flagged_random() -> None:
    provider = TracerProvider(id_generator=_SequentialIds(), shutdown_on_exit=False)
    assert _outgoing(provider.get_tracer("t"), None).endswith("-01")
