"""The W3C ``tracestate`` list: parsing as the W3C test suite expects, mutation, truncation."""

from __future__ import annotations

import pytest

from telemetry_run.sdk.context import Context
from telemetry_run.sdk.propagation.tracecontext import TraceContextTextMapPropagator
from telemetry_run.sdk.trace.api import NonRecordingSpan, SpanContext, TraceState
from telemetry_run.sdk.trace.current import get_current_span, set_span_in_context

PROPAGATOR = TraceContextTextMapPropagator()
TRACEPARENT = "00-12345678901234567890123456789012-1234567890123456-00"


def extracted(*headers: str) -> TraceState:
    carrier = {"traceparent": TRACEPARENT, "tracestate": list(headers)}
    span_context = get_current_span(PROPAGATOR.extract(carrier)).get_span_context()
    assert span_context.is_valid
    return span_context.trace_state


def injected(state: TraceState) -> str | None:
    carrier: dict[str, str] = {}
    span_context = SpanContext(1, 2, False, trace_state=state)
    PROPAGATOR.inject(carrier, set_span_in_context(NonRecordingSpan(span_context), Context()))
    return carrier.get("tracestate")


# -- parsing ----------------------------------------------------------------------------------


def test_both_headers_inherit_tracestate() -> None:
    assert dict(extracted("foo=1,bar=2")) == {"foo": "1", "bar": "2"}


def test_all_allowed_characters() -> None:
    key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
    vendor_key = key + "@a-z0-9_-*/"
    value = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")
    assert extracted(f"{key}={value}")[key] == value
    assert extracted(f"{vendor_key}={value}")[vendor_key] == value


@pytest.mark.parametrize(
    "header",
    [
        "foo=1 \t , \t bar=2, \t baz=3",
        "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
    ],
)
def test_optional_whitespace_around_members(header: str) -> None:
    assert list(extracted(header).items()) == [("foo", "1"), ("bar", "2"), ("baz", "3")]


@pytest.mark.parametrize("header", [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"])
def test_optional_whitespace_around_the_header(header: str) -> None:
    assert dict(extracted(header)) == {"foo": "1"}


def test_leading_spaces_of_a_value_are_part_of_it() -> None:
    assert extracted("foo=  1")["foo"] == "  1"


@pytest.mark.parametrize(
    "headers",
    [
        ("",),
        (" ",),
        (",",),
        ("foo=1", ""),
        ("", "foo=1"),
        ("foo=1,,",),
        (",foo=1",),
        ("foo=1, ,\t,",),
    ],
)
def test_empty_members_and_headers_are_allowed(headers: tuple[str, ...]) -> None:
    state = extracted(*headers)
    assert dict(state) == ({"foo": "1"} if any("foo" in h for h in headers) else {})


def test_empty_members_between_real_ones_are_skipped() -> None:
    assert list(extracted("a=1,,b=2, ,c=3").items()) == [("a", "1"), ("b", "2"), ("c", "3")]


def test_multiple_headers_combine_in_order() -> None:
    state = extracted("foo=1,bar=2", "rojo=1,congo=2", "baz=3")
    assert state.to_header() == "foo=1,bar=2,rojo=1,congo=2,baz=3"


@pytest.mark.parametrize(
    "headers",
    [
        ("foo=1,foo=1",),
        ("foo=1,foo=2",),
        ("foo=1", "foo=1"),
        ("foo=1", "foo=2"),
        ("foo=1,bar=2,foo=3",),
    ],
)
def test_a_duplicated_key_keeps_the_list_and_its_first_member(headers: tuple[str, ...]) -> None:
    # Level 2: duplicates no longer invalidate the list; the leftmost is the most recent one.
    state = extracted(*headers)
    assert state["foo"] == "1"
    assert injected(state) == ("foo=1,bar=2" if "bar" in state else "foo=1")


@pytest.mark.parametrize(
    "header",
    [
        "foo =1",
        "foo= 1 =",
        "FOO=1",
        "fOo=1",
        "foo.bar=1",
        "@foo=1,bar=2",
        "_foo=1",
        "-foo=1",
        "*foo=1",
        "/foo=1",
        "foo=bar=baz",
        "foo=,bar=3",
        "foo",
        "=1",
        "bar=2,foo",
        "foo=1\x00",
        "foo=1\x7f",
        "foo=caf\u00e9",
        "foo\u00e9=1",
        "foo=a\tb",
        "foo=1\n",
        # Other whitespace beside spaces and tabs: never optional whitespace.
        "foo=1 ,bar=2\n",
        " foo=1\x0b ",
        "\tfoo=1\r\n",
        "foo=1 \x1f",
        "foo=1\u00a0 ",
    ],
)
def test_an_invalid_member_discards_the_whole_list(header: str) -> None:
    assert len(extracted(header)) == 0
    assert len(extracted("ok=1", header)) == 0


@pytest.mark.parametrize(
    "key",
    [
        "foo@",
        "a@@b",
        "foo@bar@baz",
        "foo@@bar",
        "1foo",
        "0",
        "9@",
        "a" + "_-*/@" * 10,
        "t" * 242 + "@v",  # Level 1's 241-character tenant limit is gone
        "t@" + "v" * 15,  # ... and so is its 14-character system limit
    ],
)
def test_level_2_keys_are_valid(key: str) -> None:
    state = extracted(f"{key}=1,bar=2")
    assert state[key] == "1"
    assert injected(state) == f"{key}=1,bar=2"


@pytest.mark.parametrize("value", ["v", " v", "a b", "!", "~", "v" * 256, " " * 255 + "v"])
def test_values_at_the_edges_of_the_grammar_are_valid(value: str) -> None:
    assert extracted(f"foo={value}")["foo"] == value


def test_a_space_ending_a_value_is_optional_whitespace_not_part_of_it() -> None:
    # value = 0*255(chr) nblk-chr: it cannot end in a space, so the space is the list's OWS.
    assert extracted("foo=1 ,bar=2 ")["foo"] == "1"
    assert TraceState([("foo", "1 ")]).get("foo") is None
    assert TraceState().add("foo", "1 ") == TraceState()


def test_one_header_line_per_member_is_one_list() -> None:
    state = extracted("a=1", " ", "b=2,", ",c=3", "\t")
    assert list(state.items()) == [("a", "1"), ("b", "2"), ("c", "3")]


def test_thirty_two_members_are_kept() -> None:
    headers = (
        ",".join(f"bar{i:02d}={i:02d}" for i in range(1, 11)),
        ",".join(f"bar{i:02d}={i:02d}" for i in range(11, 21)),
        ",".join(f"bar{i:02d}={i:02d}" for i in range(21, 31)),
        "bar31=31,bar32=32",
    )
    state = extracted(*headers)
    assert len(state) == 32
    assert state["bar01"] == "01"


def test_thirty_three_members_discard_the_whole_list() -> None:
    header = ",".join(f"bar{i:02d}={i:02d}" for i in range(1, 34))
    assert len(extracted(header)) == 0


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("z" * 256, True),
        ("0" * 256, True),
        ("z" + "@" * 255, True),
        ("z" * 257, False),
        ("z" * 255 + "@@", False),
    ],
)
def test_key_length_limits(key: str, valid: bool) -> None:
    state = extracted("foo=1", f"{key}=1")
    assert ("foo" in state) is valid
    assert (key in state) is valid


def test_the_longest_member_is_kept_whole() -> None:
    key, value = "k" * 256, "~" * 256
    assert extracted(f"{key}={value}")[key] == value


def test_thirty_two_members_count_without_the_empty_ones() -> None:
    header = ", ,".join(f"m{i}=1" for i in range(32))
    assert len(extracted(header, ",,")) == 32
    assert len(extracted(header, ",,m32=1")) == 0


def test_a_too_large_tracestate_is_dropped_but_the_traceparent_kept() -> None:
    # Larger than any valid list could be even with generous OWS: rejected unread.
    state = extracted("foo=1" + " " * 40_000 + ",bar=2")
    assert len(state) == 0
    assert len(extracted("foo=1", *(["bar=2"] * 200))) == 0


@pytest.mark.parametrize(("size", "valid"), [(256, True), (257, False)])
def test_value_length_limit(size: int, valid: bool) -> None:
    assert ("foo" in extracted(f"foo={'v' * size}")) is valid


# -- the TraceState mutations W3C allows --------------------------------------------------------


def test_add_puts_the_new_member_first() -> None:
    state = TraceState([("rojo", "1")]).add("congo", "2")
    assert state.to_header() == "congo=2,rojo=1"


def test_update_moves_the_member_first() -> None:
    state = TraceState([("rojo", "1"), ("congo", "2")]).update("congo", "3")
    assert state.to_header() == "congo=3,rojo=1"


def test_delete_keeps_the_order_of_the_others() -> None:
    state = TraceState([("a", "1"), ("b", "2"), ("c", "3")]).delete("b")
    assert state.to_header() == "a=1,c=3"


def test_add_to_a_full_list_or_an_invalid_member_changes_nothing() -> None:
    full = TraceState([(f"k{i}", "v") for i in range(32)])
    assert full.add("new", "v") is full
    small = TraceState([("a", "1")])
    assert small.add("BAD", "v") is small
    assert small.add("ok", "bad,value") is small


# -- truncation on inject (W3C 3.3.1.5) ----------------------------------------------------------


def member(key: str, size: int) -> tuple[str, str]:
    """A member whose ``key=value`` text is exactly ``size`` characters."""
    return key, "v" * (size - len(key) - 1)


def test_short_tracestate_is_sent_whole() -> None:
    state = TraceState([("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")])
    assert injected(state) == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def test_exactly_512_characters_are_sent_whole() -> None:
    state = TraceState([member("a", 255), member("b", 256)])
    header = injected(state)
    assert header is not None
    assert len(header) == 512
    assert list(TraceState.from_header([header]).keys()) == ["a", "b"]


def test_a_large_member_goes_before_any_small_one() -> None:
    members = [member(f"s{i}", 100) for i in range(4)]
    members.insert(1, member("large", 200))
    header = injected(TraceState(members))
    assert header is not None
    assert [m.split("=")[0] for m in header.split(",")] == ["s0", "s1", "s2", "s3"]


def test_large_members_go_rightmost_first_and_only_while_too_long() -> None:
    members = [
        member("big1", 150),
        member("small1", 50),
        member("big2", 150),
        member("big3", 150),
        member("small2", 50),
    ]
    # 554 characters with commas: removing big3 alone is enough.
    header = injected(TraceState(members))
    assert header is not None
    assert [m.split("=")[0] for m in header.split(",")] == ["big1", "small1", "big2", "small2"]
    assert len(header) <= 512


def test_without_large_members_the_last_ones_go() -> None:
    members = [member(f"k{i:02d}", 100) for i in range(8)]
    header = injected(TraceState(members))
    assert header is not None
    assert [m.split("=")[0] for m in header.split(",")] == ["k00", "k01", "k02", "k03", "k04"]


def test_after_large_members_the_last_ones_go() -> None:
    members = [member("big", 129), *[member(f"k{i}", 120) for i in range(5)]]
    header = injected(TraceState(members))
    assert header is not None
    assert [m.split("=")[0] for m in header.split(",")] == ["k0", "k1", "k2", "k3"]
    assert len(header) <= 512


def test_a_member_of_exactly_128_is_not_large() -> None:
    members = [member("a", 128), member("b", 128), member("c", 128), member("d", 129)]
    # 516 characters: the 129-character member goes, not the last one.
    header = injected(TraceState([members[3], *members[:3]]))
    assert header is not None
    assert [m.split("=")[0] for m in header.split(",")] == ["a", "b", "c"]


def test_truncation_result_round_trips_through_extract() -> None:
    members = [member(f"k{i:02d}", 250) for i in range(10)]
    header = injected(TraceState(members))
    assert header is not None
    assert len(header) <= 512
    assert extracted(header).to_header() == header


def test_many_distinct_tracestates_parse_and_format_independently() -> None:
    from telemetry_run.sdk.propagation import tracecontext

    for i in range(600):
        header = f"k{i}=v{i},shared=1"
        state = extracted(header)
        assert list(state.items()) == [(f"k{i}", f"v{i}"), ("shared", "1")]
        assert injected(state) == header
    assert len(tracecontext._parsed_states) <= 256
    assert len(tracecontext._formatted_states) <= 256


def test_equal_states_from_different_headers_spelled_differently() -> None:
    assert injected(extracted("a=1 , b=2")) == "a=1,b=2"
    assert injected(extracted("a=1,b=2")) == "a=1,b=2"
    assert injected(extracted("a=1", "b=2")) == "a=1,b=2"


def test_from_header_takes_any_iterable_of_lines() -> None:
    lines = ["a=1", "b=2"]
    assert TraceState.from_header(iter(lines)) == TraceState.from_header(lines)  # type: ignore[arg-type]
    assert TraceState.from_header(tuple(lines)).to_header() == "a=1,b=2"
