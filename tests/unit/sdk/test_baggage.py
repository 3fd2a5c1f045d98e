"""Baggage: the context API and the W3C ``baggage`` header propagator."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_run.sdk import baggage
from telemetry_run.sdk.context import Context, attach, detach, set_value
from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator

PROPAGATOR = W3CBaggagePropagator()
TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# W3C baggage: token "=" baggage-octets, nothing else once we have written it.
SENT_MEMBER = re.compile(
    r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+=[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*\Z"
)


def extracted(*headers: str, context: Context | None = None) -> dict[str, str]:
    return dict(baggage.get_all(PROPAGATOR.extract({"baggage": list(headers)}, context)))


def injected(entries: dict[str, str]) -> str | None:
    context = Context()
    for key, value in entries.items():
        context = baggage.set_baggage(key, value, context)
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context)
    return carrier.get("baggage")


# -- the context API --------------------------------------------------------------------------


def test_set_and_get() -> None:
    context = baggage.set_baggage("user", "alice", Context())
    assert baggage.get_baggage("user", context) == "alice"
    assert baggage.get_all(context) == {"user": "alice"}
    assert baggage.get_baggage("missing", context) is None


def test_setting_returns_a_new_context_and_leaves_the_old_one() -> None:
    first = baggage.set_baggage("a", "1", Context())
    second = baggage.set_baggage("b", "2", first)
    assert baggage.get_all(first) == {"a": "1"}
    assert baggage.get_all(second) == {"a": "1", "b": "2"}


def test_overwrite_keeps_one_entry() -> None:
    context = baggage.set_baggage("a", "2", baggage.set_baggage("a", "1", Context()))
    assert baggage.get_all(context) == {"a": "2"}


def test_remove_and_clear() -> None:
    context = baggage.set_baggage("b", "2", baggage.set_baggage("a", "1", Context()))
    removed = baggage.remove_baggage("a", context)
    assert baggage.get_all(removed) == {"b": "2"}
    assert baggage.get_all(context) == {"a": "1", "b": "2"}
    assert baggage.get_all(baggage.remove_baggage("missing", context)) == {"a": "1", "b": "2"}
    assert baggage.get_all(baggage.clear(context)) == {}


def test_get_all_is_read_only() -> None:
    entries = baggage.get_all(baggage.set_baggage("a", "1", Context()))
    with pytest.raises(TypeError):
        entries["b"] = "2"  # type: ignore[index]


def test_the_current_context_is_the_default() -> None:
    token = attach(baggage.set_baggage("user", "alice", Context()))
    try:
        assert baggage.get_baggage("user") == "alice"
        assert baggage.get_all(baggage.set_baggage("b", "2")) == {"user": "alice", "b": "2"}
    finally:
        detach(token)
    assert baggage.get_baggage("user") is None


def test_other_context_values_survive() -> None:
    context = baggage.set_baggage("a", "1", set_value("unrelated", 7, Context()))
    assert context["unrelated"] == 7
    assert baggage.clear(context)["unrelated"] == 7


# -- extract ----------------------------------------------------------------------------------


def test_spec_example_single_header() -> None:
    assert extracted("userId=alice,serverNode=DF%2028,isProduction=false") == {
        "userId": "alice",
        "serverNode": "DF 28",
        "isProduction": "false",
    }


def test_spec_example_split_headers() -> None:
    assert extracted("userId=alice", "serverNode=DF%2028,isProduction=false") == {
        "userId": "alice",
        "serverNode": "DF 28",
        "isProduction": "false",
    }


def test_spec_example_whitespace_is_trimmed() -> None:
    assert extracted("userId =   alice", "serverNode = DF%2028, isProduction = false") == {
        "userId": "alice",
        "serverNode": "DF 28",
        "isProduction": "false",
    }


def test_spec_example_properties_are_accepted_and_dropped() -> None:
    header = (
        "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"
    )
    assert extracted(header) == {"key1": "value1", "key2": "value2", "key3": "value3"}


def test_value_may_contain_equal_signs() -> None:
    assert extracted("k=a=b==") == {"k": "a=b=="}


def test_empty_value() -> None:
    assert extracted("k=,j=1") == {"k": "", "j": "1"}


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("%E2%9C%93", "\u2713"),
        ("%F0%9F%98%80", "\U0001f600"),
        ("a+b", "a+b"),
        ("a%2Bb", "a+b"),
        ("%2C%3B%3D%25", ",;=%"),
        ("%zz", "%zz"),
        ("100%", "100%"),
        ("%ff", "\ufffd"),
    ],
)
def test_values_are_percent_decoded(encoded: str, decoded: str) -> None:
    assert extracted(f"k={encoded}") == {"k": decoded}


def test_escapes_are_decoded_beside_percent_signs_that_begin_none() -> None:
    # One header: good escapes next to "%" that begin none (the values read apart from the
    # bulk decoding's fast check), and an escaped comma among them.
    header = "a=%E2%9C%93,b=100%,c=%zz%41,d=%%41%4,e=%E2%8,f=%2c%,g=a=b%3D"
    assert extracted(header) == {
        "a": "\u2713",
        "b": "100%",
        "c": "%zzA",
        "d": "%A%4",
        "e": "\ufffd%8",
        "f": ",%",
        "g": "a=b=",
    }
    # A value of 4000 "%" signs that begin no escape: decoded in bulk like any other.
    assert extracted("k=" + "%" * 4000 + "%41") == {"k": "%" * 4000 + "A"}


def test_only_spaces_and_tabs_are_optional_whitespace() -> None:
    # Beside OWS, other whitespace (which str.strip() would also remove) fails its member.
    header = " a = 1 ,b=2\n, c=3\x0b,\nd=4,e=5\u00a0,\x1ff=6, g=7\t"
    assert extracted(header) == {"a": "1", "g": "7"}


def test_keys_are_not_decoded() -> None:
    assert extracted("a%20b=1") == {"a%20b": "1"}


@pytest.mark.parametrize(
    "bad",
    [
        "nokey",
        "=novalue",
        "bad key=1",
        "k=two words",
        'k="quoted"',
        "k=back\\slash",
        "k=caf\u00e9",
        "k\u00e9=1",
        "k=\x01",
        "(k)=1",
        "k:=1",
        "",
        " ",
    ],
)
def test_malformed_members_are_skipped_and_the_rest_kept(bad: str) -> None:
    assert extracted(f"a=1,{bad},b=2") == {"a": "1", "b": "2"}


def test_later_duplicate_wins() -> None:
    assert extracted("k=1,k=2", "k=3") == {"k": "3"}


def test_stops_at_180_entries() -> None:
    header = ",".join(f"k{i}={i}" for i in range(200))
    entries = extracted(header)
    assert len(entries) == 180
    assert "k179" in entries
    assert "k180" not in entries


def test_repeated_keys_count_once_toward_the_180_entries() -> None:
    # 150 members but 2 keys: every member is read (the later value wins), none is cut.
    header = ",".join(f"k={i}" for i in range(149)) + ",last=1"
    assert extracted(header) == {"k": "148", "last": "1"}
    # 89 keys, one changed, the 89 again, one more: 180 members, 90 keys, in order.
    distinct = ",".join(f"k{i}=1" for i in range(89))
    entries = extracted(distinct + ",k0=2," + distinct + ",z=1")
    assert list(entries) == [f"k{i}" for i in range(89)] + ["z"]
    assert entries["k0"] == "1"


def test_member_over_4096_is_skipped() -> None:
    entries = extracted(f"a=1,big={'v' * 4093},b=2")
    assert entries == {"a": "1", "b": "2"}
    assert "big" in extracted(f"big={'v' * 4092}")


def test_reading_stops_at_8192_characters() -> None:
    members = [f"k{i:03d}={'v' * 95}" for i in range(100)]  # 100 characters each
    entries = extracted(",".join(members))
    # 81 members and 80 commas fill 8180 characters; the 82nd would end at 8281.
    assert len(entries) == 81
    assert "k080" in entries
    assert "k081" not in entries


def test_the_8192_limit_spans_several_headers() -> None:
    first = ",".join(f"a{i:02d}={'v' * 196}" for i in range(40))  # 8039 characters
    assert len(extracted(first, "b=1")) == 41
    entries = extracted(first, "b=1", "c=" + "v" * 200)
    assert len(entries) == 41
    assert entries["b"] == "1"
    assert "c" not in entries


def test_extracted_entries_merge_into_the_given_context() -> None:
    given_context = baggage.set_baggage("mine", "1", baggage.set_baggage("k", "old", Context()))
    assert extracted("k=new,theirs=2", context=given_context) == {
        "mine": "1",
        "k": "new",
        "theirs": "2",
    }


@pytest.mark.parametrize(
    "carrier",
    [{}, {"baggage": ""}, {"baggage": "nokey"}, {"baggage": None}, {"baggage": 5}, None, 3],
)
def test_nothing_extracted_returns_the_given_context(carrier: object) -> None:
    given_context = set_value("unrelated", 1, Context())
    assert PROPAGATOR.extract(carrier, given_context) is given_context


def test_header_name_in_any_case() -> None:
    result = PROPAGATOR.extract({"Baggage": "a=1"})
    assert baggage.get_all(result) == {"a": "1"}


# -- inject -----------------------------------------------------------------------------------


def test_inject_spec_example() -> None:
    header = injected({"userId": "alice", "serverNode": "DF 28", "isProduction": "false"})
    assert header == "userId=alice,serverNode=DF%2028,isProduction=false"


def test_inject_encodes_delimiters_and_non_ascii() -> None:
    header = injected({"k": 'a,b;c=d e"f\\g%h+i\u2713'})
    assert header == "k=a%2Cb%3Bc%3Dd%20e%22f%5Cg%25h%2Bi%E2%9C%93"


def test_inject_skips_keys_that_are_not_tokens() -> None:
    header = injected({"good": "1", "bad key": "2", "caf\u00e9": "3", "": "4", "a,b": "5"})
    assert header == "good=1"


def test_inject_skips_values_that_are_not_text() -> None:
    context = baggage.set_baggage("num", 5, Context())  # type: ignore[arg-type]
    context = baggage.set_baggage("ok", "1", context)
    context = baggage.set_baggage("surrogate", "\ud800", context)
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context)
    assert carrier == {"baggage": "ok=1"}


def test_inject_nothing_without_baggage() -> None:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, Context())
    PROPAGATOR.inject(carrier, baggage.set_baggage("bad key", "1", Context()))
    assert carrier == {}


def test_inject_sends_at_most_180_entries() -> None:
    header = injected({f"k{i}": str(i) for i in range(250)})
    assert header is not None
    assert len(header.split(",")) == 180
    assert header.endswith("k179=179")


def test_inject_skips_a_member_over_4096() -> None:
    assert injected({"a": "1", "big": "v" * 4093, "b": "2"}) == "a=1,b=2"
    assert injected({"big": "v" * 4092}) == "big=" + "v" * 4092


def test_inject_keeps_the_header_within_8192() -> None:
    entries = {f"k{i:03d}": "v" * 95 for i in range(100)}
    entries["small"] = "1"
    header = injected(entries)
    assert header is not None
    assert len(header) <= 8192
    members = header.split(",")
    assert len(members) == 82  # 81 large ones, then the small one still fits
    assert members[-1] == "small=1"


def test_inject_uses_the_current_context_by_default() -> None:
    token = attach(baggage.set_baggage("user", "alice", Context()))
    try:
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier)
    finally:
        detach(token)
    assert carrier == {"baggage": "user=alice"}


def test_fields() -> None:
    assert PROPAGATOR.fields == {"baggage"}


# -- properties -------------------------------------------------------------------------------

keys = st.text(TCHAR, min_size=1, max_size=20)
entries_strategy = st.dictionaries(keys, st.text(max_size=50), max_size=10)


@given(entries_strategy)
def test_valid_entries_round_trip(entries: dict[str, str]) -> None:
    header = injected(entries)
    if not entries:
        assert header is None
        return
    assert header is not None
    assert all(SENT_MEMBER.match(member) for member in header.split(","))
    assert extracted(header) == entries


def mutated_baggage() -> st.SearchStrategy[str]:
    member = st.builds(
        lambda k, sep, v, prop: f"{k}{sep}{v}{prop}",
        st.one_of(keys, st.text(max_size=5)),
        st.sampled_from(["=", " = ", "", "=="]),
        st.text(max_size=20),
        st.sampled_from(["", ";p", "; p=1", ";", ";;=,"]),
    )
    return st.lists(member, max_size=8).map(",".join)


header_text = st.one_of(st.text(), mutated_baggage())


@settings(max_examples=300)
@given(st.one_of(header_text, st.lists(header_text, max_size=4), st.binary(max_size=40)))
def test_arbitrary_headers_never_raise_and_reinject_well_formed(value: object) -> None:
    given_context = set_value("unrelated", 1, Context())
    result = PROPAGATOR.extract({"baggage": value}, given_context)
    assert result["unrelated"] == 1
    entries = baggage.get_all(result)
    assert len(entries) <= 180
    for key, entry_value in entries.items():
        assert re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", key)
        assert isinstance(entry_value, str)
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, result)
    if "baggage" in carrier:
        header = carrier["baggage"]
        assert len(header) <= 8192
        members = header.split(",")
        assert len(members) <= 180
        assert all(SENT_MEMBER.match(member) for member in members)
        assert extracted(header) == dict(entries)
    else:
        assert not entries


def test_without_a_context_the_current_baggage_is_not_merged() -> None:
    token = attach(baggage.set_baggage("current", "1", Context()))
    try:
        result = PROPAGATOR.extract({"baggage": "theirs=2"})
    finally:
        detach(token)
    assert dict(baggage.get_all(result)) == {"theirs": "2"}


def test_at_most_180_comma_separated_items_are_read() -> None:
    # As many as entries allowed: a header of commas, duplicates or invalid members costs no
    # more than a full valid one.
    assert extracted("," * 179 + "a=1,b=2") == {"a": "1"}
    assert extracted("," * 180 + "a=1") == {}
    assert extracted("," * 100, "," * 79 + "a=1", "b=2") == {}
    assert extracted("," * 100, "," * 78 + "a=1", "b=2") == {"a": "1"}


def test_a_value_cut_inside_an_escape_is_decoded_alone() -> None:
    """A header cut inside an escape: that value as ``unquote`` reads it, the others decoded."""
    from urllib.parse import unquote

    expected = {"a": "café", "b": "€", "c": unquote("x%E2%", errors="replace")}
    assert extracted("a=caf%C3%A9,b=%E2%82%AC,c=x%E2%") == expected


def test_the_limits_count_across_headers() -> None:
    first = ",".join(f"k{i}=v" for i in range(100))
    second = ",".join(["k0=w", *(f"n{i}=v" for i in range(79)), "last=1"])  # 81 items
    entries = extracted(first, second)  # the 181st item is not read
    assert len(entries) == 179 and entries["k0"] == "w" and "last" not in entries
    entries = extracted(first, ",".join(f"n{i}=v" for i in range(90)))
    assert len(entries) == 180 and "n79" in entries and "n80" not in entries


@pytest.mark.parametrize(
    "member",
    ["a =1", "a= 1", " a = 1 ", "\ta\t=\t1\t", "a=1;prop", "a=1 ; p=2;q", "a=1;\x00"],
)
def test_optional_whitespace_and_properties_around_a_member(member: str) -> None:
    assert extracted(member) == {"a": "1"}


@pytest.mark.parametrize(
    "member", ["a b=1", "a=1 2", "a=\x7f", "a=caf\u00e9", 'a="1"', "a=1\\", "a\u00e9=1", "=1"]
)
def test_a_member_outside_the_grammar_is_skipped(member: str) -> None:
    assert extracted(f"{member},ok=1") == {"ok": "1"}


def _one_by_one(header: str) -> dict[str, str]:
    """The member grammar read the obvious way, one member at a time: what the one-pass
    parser must agree with (one header, within the size limits)."""
    from urllib.parse import unquote

    entries: dict[str, str] = {}
    token = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    octets = {chr(c) for c in range(0x21, 0x7F)} - set('",;\\')
    for member in header.split(",", 180)[:180]:
        if len(member) > 4096:
            continue
        key, sep, value = member.partition("=")
        value = value.partition(";")[0].strip(" \t")
        key = key.strip(" \t")
        if not (sep and key and set(key) <= token and set(value) <= octets):
            continue
        entries[key] = unquote(value, errors="replace") if "%" in value else value
        if len(entries) >= 180:
            break
    return entries


_tokens = st.text("abcAB09!#$&'*+-.^_`|~", min_size=0, max_size=6)
_octets = st.text("abcAB09!#$&'()*+-./:<=>?@[]^_`{|}~%é \t;\"%%%2CE8", max_size=10)
_ows = st.sampled_from(["", " ", "\t", " \t "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ows, _tokens, _ows, st.booleans(), _ows, _octets), max_size=260))
def test_the_one_pass_parser_agrees_with_reading_member_by_member(
    members: list[tuple[str, str, str, bool, str, str]],
) -> None:
    # Whitespace, properties, escapes, invalid characters, missing "=", empty keys,
    # duplicates (the later wins) and the 180-entry stop: all as the member loop reads them.
    from telemetry_run.sdk.propagation.baggage import parse_baggage

    header = ",".join(
        f"{a}{key}{b}{'=' if eq else ''}{c}{value}" for a, key, b, eq, c, value in members
    )
    if len(header) > 8192:
        header = header[:8192].rpartition(",")[0]
    parsed = parse_baggage([header])
    assert parsed == _one_by_one(header)
    assert len(parsed) <= 180


@pytest.mark.parametrize("before", [0, 1000, 3000, 4090, 4095])
def test_a_member_over_4096_is_skipped_wherever_it_falls(before: int) -> None:
    # Only the member across the middle of the chunk is measured: any too long one holds it.
    head = ",".join(["a=1"] + [f"p{i:02d}=" + "v" * 45 for i in range(before // 50)])
    header = f"{head},big={'v' * 4093},b=2"
    entries = extracted(header)
    assert "big" not in entries and entries["a"] == "1" and entries["b"] == "2"
    assert "big" in extracted(f"{head},big={'v' * 4092},b=2")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a=%3D,b=%2C", {"a": "=", "b": ","}),  # escaped separators
        ("a=%22,b=1", {"a": '"', "b": "1"}),
        ("a%41=%41,b=1", {"a%41": "A", "b": "1"}),  # a key is not decoded
        ("a=%zz,b=%41", {"a": "%zz", "b": "A"}),
        ("a=%4,b=%41", {"a": "%4", "b": "A"}),
        ("a=%,b=%", {"a": "%", "b": "%"}),
        ("a=%e2%82%ac,b=%E2%82", {"a": "\u20ac", "b": "\ufffd"}),
        ("a = 1 , b = %41 ", {"a": "1", "b": "A"}),
        ("a=1,b=2=3", {"a": "1", "b": "2=3"}),
        ("a=1,=2,c=3", {"a": "1", "c": "3"}),
        ("a=1,b,c=3==", {"a": "1", "c": "3=="}),
        # Whitespace only inside parts (nothing to strip: it is invalid there), then at an edge.
        ("a b=1,c=2,d=3 4", {"c": "2"}),
        ("a b=1,c=2 ", {"c": "2"}),
        (" a b=1,c=\t2", {"c": "2"}),
        ("a b=1,c =2", {"c": "2"}),
    ],
)
def test_members_of_tokens_read_at_once_as_one_by_one(
    header: str, expected: dict[str, str]
) -> None:
    # Headers of token characters take the whole-text path: its edges give what the member
    # loop gives.
    assert extracted(header) == expected == _one_by_one(header)


_token_chars = "abAB09!#$&'*+-.^_`|~"
_simple_key = st.text(_token_chars + "%", min_size=1, max_size=5)
_simple_value = st.text(_token_chars + "%%%cfCF2D", max_size=9)
_space = st.sampled_from(["", "", " "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_space, _simple_key, _space, _space, _simple_value), max_size=200))
def test_token_members_agree_with_reading_member_by_member(
    members: list[tuple[str, str, str, str, str]],
) -> None:
    # All members token=token with single spaces: the whole-text path, or its fallback.
    from telemetry_run.sdk.propagation.baggage import parse_baggage

    header = ",".join(f"{a}{key}{b}={c}{value}" for a, key, b, c, value in members)
    assert parse_baggage([header]) == _one_by_one(header)
