"""W3C Baggage (``baggage`` header): the context's baggage entries in and out of carriers.

Values are percent-encoded UTF-8 so any text survives the trip. A peer may send anything, so a
malformed member is skipped rather than failing the header, and the size limits bound both the
work done on a hostile header and what we send.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import compress
from operator import add, itemgetter, not_
from typing import Final

from telemetry_run.sdk.baggage import _with_entries, get_all
from telemetry_run.sdk.context import Context
from telemetry_run.sdk.propagation._carriers import Getter, Setter, WSGIEnvironGetter
from telemetry_run.sdk.propagation._textmap import (
    CarrierT,
    TextMapPropagator,
    _default_getter,
    _default_setter,
)

__all__ = ["W3CBaggagePropagator"]

BAGGAGE: Final = "baggage"
_TRACEPARENT: Final = "traceparent"  # see W3CBaggagePropagator
_ENVIRON_BAGGAGE: Final = "HTTP_BAGGAGE"  # where a WSGI environ holds the header
_WSGI_GETTER: Final[type] = WSGIEnvironGetter  # its look-ups, read without its calls

# Limits from the OpenTelemetry baggage guidance; W3C asks to propagate at least 64 members
# and 8192 bytes, so these never cut what a peer is required to forward.
MAX_ENTRIES: Final = 180
MAX_MEMBER_BYTES: Final = 4096
MAX_HEADER_BYTES: Final = 8192

# The grammar, as the bytes each part may hold; a part is valid when deleting those leaves
# nothing (bytes.translate: linear, C speed, nothing to backtrack).
_TOKEN: Final = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_OCTETS: Final = bytes(  # W3C baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
    c for c in range(0x21, 0x7F) if c not in b'",;\\'
)
# A header is read as at most this many comma-separated items, empty and invalid ones
# included, whatever its length: the cost of a header of commas, of duplicates or of invalid
# members is bounded by what 180 valid ones cost (W3C asks to propagate 64 members).
_MAX_ITEMS: Final = MAX_ENTRIES

# Parts of ``str.partition`` results, taken from every member by ``map`` (C, no frame each).
_FIRST: Final = itemgetter(0)
_SECOND: Final = itemgetter(1)
_THIRD: Final = itemgetter(2)


def _is_token(text: str) -> bool:
    """RFC 7230 3.2.6 token."""
    return bool(text) and text.isascii() and not text.encode().translate(None, _TOKEN)


# Sent unencoded: baggage-octets other than '%' (the escape), '=' and '+' (read as a space by
# some peers' decoders). Letters, digits and "_.-~" are always kept by quote().
_SAFE: Final = "!#$&'()*/:<>?@[]^`{|}"


def parse_baggage(headers: Iterable[str]) -> dict[str, str]:
    """The entries of the combined ``baggage`` headers, within the size limits.

    Only the first 8192 characters and 180 comma-separated items are read (a member that
    crosses either limit is dropped), members longer than 4096 are skipped, and reading stops
    at 180 entries. A later duplicate key wins. (Characters are bytes here: a valid member is
    ASCII.) Linear in the size read, with no regular expression.
    """
    entries: dict[str, str] = {}
    remaining = MAX_HEADER_BYTES
    items = _MAX_ITEMS
    for header in headers:
        if remaining < 0 or items <= 0:
            break
        chunk = header[: remaining + 1]
        members = chunk.split(",", items)
        if len(header) > remaining or len(members) > items:
            members.pop()  # cut at a limit, or wholly beyond it
        remaining -= len(header) + 1
        items -= len(members)
        if _add_members(chunk, members, entries):
            break
    return entries


def _add_members(chunk: str, members: list[str], entries: dict[str, str]) -> bool:
    """Add the valid ``key OWS "=" OWS value OWS *(";" property)`` members of ``chunk`` (cut
    into ``members``) to ``entries``, in order, skipping the others; True once the entry limit
    is reached.

    Members are read ``MAX_ENTRIES`` at a time, so a header of valid members stops after the
    first slice, as a member-by-member reading would.
    """
    if _may_hold_a_long_member(chunk):
        members = [member for member in members if len(member) <= MAX_MEMBER_BYTES]
    if not all(members):
        members = list(filter(None, members))  # empty members are skipped
    text = ",".join(members)  # what is read: the checks below do not scan the rest
    spaced = _whitespace(text)
    properties = ";" in text
    for start in range(0, len(members), MAX_ENTRIES):
        read = members[start : start + MAX_ENTRIES]
        if properties:  # accepted and dropped: cutting the member there is the same (in
            read = [member.partition(";")[0] for member in read]  # a key, ";" fails it)
        joined = ",".join(read) if properties or len(read) < len(members) else text
        ows = spaced if spaced and _ows_at_edges(joined) else _NO_OWS  # else none to strip
        simple = None if ows == _OWS else _simple_members(read, joined, ows)
        if simple is not None:
            keys, values = simple
        else:
            keys, values = _valid_members(read, ows, False)
            if "%" in text:
                values = _decode(values)
        if len(entries) + len(keys) < MAX_ENTRIES:
            entries.update(zip(keys, values, strict=True))
            continue
        if not entries or len(entries) + len(set(keys)) < MAX_ENTRIES:
            # Empty before: a slice holds at most 180, so the limit falls on its last member
            # if at all. Otherwise its distinct keys cannot reach it. No need to go one by one.
            entries.update(zip(keys, values, strict=True))
            if len(entries) >= MAX_ENTRIES:
                return True
            continue
        for key, value in zip(keys, values, strict=True):  # the limit falls in it: one by one
            entries[key] = value
            if len(entries) >= MAX_ENTRIES:
                return True
    return False


def _may_hold_a_long_member(chunk: str) -> bool:
    """False when no comma-separated member of ``chunk`` is longer than ``MAX_MEMBER_BYTES``.

    A chunk is at most ``MAX_HEADER_BYTES + 1`` long, so a member longer than half of that
    holds its middle character: only the member there is measured, not each one.
    """
    middle = MAX_MEMBER_BYTES
    if len(chunk) <= middle:
        return False
    start = chunk.rfind(",", 0, middle + 1) + 1
    end = chunk.find(",", middle)
    return (len(chunk) if end < 0 else end) - start > MAX_MEMBER_BYTES


# What ``_whitespace`` says of a chunk: no OWS; OWS and other whitespace (``strip(" \t")``);
# OWS only, which ``str.strip()`` then strips exactly, ten times as fast.
_NO_OWS: Final = 0
_OWS: Final = 1
_OWS_ONLY: Final = 2
# ASCII whitespace that ``str.strip()`` removes besides OWS: all of it invalid in a member.
_OTHER_WHITESPACE: Final = b"\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_NOT_OTHER_WHITESPACE: Final = bytes(c for c in range(256) if c not in _OTHER_WHITESPACE)


def _whitespace(chunk: str) -> int:
    """``_NO_OWS``, ``_OWS`` or ``_OWS_ONLY`` (the only whitespace ``str.strip()`` knows in
    ``chunk`` is spaces and tabs)."""
    if " " not in chunk and "\t" not in chunk:
        return _NO_OWS
    if chunk.isascii() and not chunk.encode().translate(None, _NOT_OTHER_WHITESPACE):
        return _OWS_ONLY
    return _OWS


# For ``_ows_at_edges``: spaces and tabs as " ", the separators as ",", anything else as "a".
_EDGE_SHAPE: Final = bytes(
    ord(" ") if c in b" \t" else ord(",") if c in b",=" else ord("a") for c in range(256)
)


def _ows_at_edges(text: str) -> bool:
    """Whether a space or tab touches a separator or an end of ``text`` (members already cut
    at ";"): only there can stripping change a key or a value. Whitespace elsewhere is inside
    one, where it is invalid: the grammar checks reject it as they would after stripping.
    One translation, then two searches, instead of eight over the text."""
    shape = text.encode("utf-8", "surrogatepass").translate(_EDGE_SHAPE)
    return b" ," in shape or b", " in shape or shape.startswith(b" ") or shape.endswith(b" ")


def _valid_members(
    members: list[str], spaced: int, properties: bool
) -> tuple[list[str], list[str]]:
    """The keys and the values of the members that follow the grammar, in order.

    Each step is one C call over all the members or one list comprehension of one C method
    per member (``operator.methodcaller`` is slower here), never a dozen Python-level calls
    per member: 180 members stay inside the extract budget whatever they hold. The grammar
    check of all keys (and of all values) is one ``bytes.translate`` over them joined by
    commas (which no member holds): what remains between the commas is each one's invalid
    characters (non-ASCII ones encode to bytes above 0x7F, which no table keeps).
    """
    pairs = [member.partition("=") for member in members]
    keys = list(map(_FIRST, pairs))
    values = list(map(_THIRD, pairs))
    if properties:  # accepted and dropped (in a key, ";" fails the check)
        values = [value.partition(";")[0] for value in values]
    if spaced == _OWS_ONLY:
        keys = list(map(str.strip, keys))
        values = list(map(str.strip, values))
    elif spaced:
        keys = [key.strip(" \t") for key in keys]
        values = [value.strip(" \t") for value in values]
    invalid_keys = ",".join(keys).encode("utf-8", "surrogatepass").translate(None, _TOKEN)
    invalid_values = ",".join(values).encode("utf-8", "surrogatepass").translate(None, _OCTETS)
    separators = b"," * (len(keys) - 1)
    if invalid_keys == separators == invalid_values and all(keys) and all(map(_SECOND, pairs)):
        return keys, values
    # Keep a member when its key is not empty, it has "=", and neither its key nor its value
    # left an invalid character: C iterators, no Python frame per member.
    invalid = map(add, invalid_keys.split(b","), invalid_values.split(b","))
    keep = list(map(all, zip(keys, map(_SECOND, pairs), map(not_, invalid), strict=True)))
    return list(compress(keys, keep)), list(compress(values, keep))


# For ``_simple_members``: the bytes a member of only token characters holds; the bytes that
# are not the two separators or the escape; what remains of members with one "=" each; the
# escapes in ``a2b_qp``'s syntax, with '"' (no octet) standing for the separator "=".
_TOKEN_OR_SEPARATOR: Final = _TOKEN + b",="
_NOT_SEPARATOR_OR_ESCAPE: Final = bytes(c for c in range(256) if c not in b",=%")
_ONE_EQUALS_EACH: Final = b"=," * MAX_ENTRIES
_QUOTED_PRINTABLE: Final = bytes.maketrans(b"=%", b'"=')


def _simple_members(
    members: list[str], text: str, spaced: int
) -> tuple[list[str], list[str]] | None:
    """Keys and decoded values of ``members`` (``text`` is them joined by commas) when each
    is ``token=token`` (single spaces around the parts allowed), else None: cut, stripped and
    decoded for all the members at once, by a few C calls over the text instead of a few per
    member, and no more passes over it than the answer needs.

    Escapes are decoded in the whole text (keys included) when no key holds ``%``, every
    ``%`` begins one and none stands for a separator; otherwise None, for the general path.
    """
    count = len(members)
    if spaced:  # spaces only (tabs and longer runs: the general path)
        if "\t" in text or text.count("=") != count:
            return None  # where most headers of invalid members fail
        text = text.replace(" =", "=").replace("= ", "=").replace(" ,", ",").replace(", ", ",")
        text = text.strip(" ")
    if not text.isascii():
        return None
    raw = text.encode()
    if raw.translate(None, _TOKEN_OR_SEPARATOR):
        return None  # a character outside tokens (a space left inside a part, too)
    marks = raw.translate(None, _NOT_SEPARATOR_OR_ESCAPE)  # ",", "=" and "%", in order
    escaped = len(marks) >= 2 * count  # more than the separators of one "=" each
    if (marks.translate(None, b"%") if escaped else marks) != _ONE_EQUALS_EACH[: 2 * count - 1]:
        return None  # a member without "=" and one with several
    if escaped:
        if marks.startswith(b"%") or b",%" in marks:
            return None  # a key holds "%" (between a comma and its "="): keys are not decoded
        from binascii import a2b_qp  # not at import: this module loads at every start-up

        decoded = a2b_qp(raw.translate(_QUOTED_PRINTABLE))
        if len(decoded) != len(raw) - 2 * (len(marks) - 2 * count + 1):
            return None  # a "%" that begins no escape
        text = decoded.decode("utf-8", "replace").replace('"', ",")
    else:
        text = text.replace("=", ",")
    parts = text.split(",")
    if len(parts) != 2 * count:
        return None  # an escaped separator: "%2C" or "%22" (which stood for "=")
    keys = parts[0::2]
    if not all(keys):
        return None  # an empty key
    return keys, parts[1::2]


def _decode(values: list[str]) -> list[str]:
    """``values`` percent-decoded (UTF-8, errors replaced), as ``urllib.parse.unquote`` does.

    ``unquote`` walks the escapes in Python, microseconds a value; here all the values are
    decoded in one pass by ``binascii.a2b_qp`` (quoted-printable's ``=XX`` is ``%XX`` with
    another sign), joined by commas, which no value holds. The length of its result shows
    whether every ``%`` began an escape (each one shortens the text by two); if one did not
    (``%zz``, a value cut after ``%E2%8``), the escapes are marked by position instead
    (``_escapes_only``), still in C, so a header of ``%`` costs no more than one of escapes.
    An escaped comma sends each value through ``a2b_qp`` apart (the commas join them).
    """
    from binascii import a2b_qp  # not at import: this module loads at every start-up

    if not values:
        return []
    joined = ",".join(values).encode()  # valid values are ASCII
    quoted = joined.replace(b"=", b"=3D").replace(b"%", b"=")
    raw = a2b_qp(quoted)
    if len(raw) != len(quoted) - 2 * quoted.count(b"="):
        quoted = _escapes_only(joined)
        raw = a2b_qp(quoted)
    if raw.count(b",") != len(values) - 1:  # an escaped comma (faster than searching for one)
        return [a2b_qp(value).decode("utf-8", "replace") for value in quoted.split(b",")]
    return raw.decode("utf-8", "replace").split(",")


# For _escapes_only: every byte as "h" (a hex digit), "%" or "x" (anything else); then the
# change that turns a "%" into "=" (at each escape), and "=" out of the way ('"' is no octet).
_SHAPE: Final = bytes(
    ord("h") if chr(c) in "0123456789ABCDEFabcdef" else c if c == ord("%") else ord("x")
    for c in range(256)
)
_PERCENT_TO_EQUALS: Final = bytes(ord("%") ^ ord("=") if c == ord("=") else 0 for c in range(256))
_EQUALS_AWAY: Final = bytes.maketrans(b"=", b'"')


def _escapes_only(joined: bytes) -> bytes:
    """``joined`` in ``a2b_qp``'s syntax, its ``%`` that begin no escape kept as they are.

    The escapes are found on the text's shape (``%hh`` where ``h`` is a hex digit, replaced by
    ``=hh``: non-overlapping, left to right, as ``unquote`` reads them), then their ``%``
    become ``=`` in the text itself by XOR of the two as integers: every step one C call,
    linear in the length.
    """
    marked = joined.translate(_SHAPE).replace(b"%hh", b"=hh")
    change = int.from_bytes(marked.translate(_PERCENT_TO_EQUALS), "big")
    text = int.from_bytes(joined.translate(_EQUALS_AWAY), "big") ^ change
    return text.to_bytes(len(joined), "big").replace(b'"', b"=3D")


def format_baggage(entries: Iterable[tuple[object, object]]) -> str:
    """The ``baggage`` header for ``entries``; entries that cannot be sent are left out.

    A key must be an RFC 7230 token and a value a str; a member that would pass 4096
    characters, or the header 8192, or the entry count 180, is dropped.
    """
    from urllib.parse import quote  # not at import: this module loads at every start-up

    members: list[str] = []
    size = -1  # no comma before the first member
    for key, value in entries:
        if not isinstance(key, str) or not isinstance(value, str):
            continue
        if not _is_token(key):
            continue
        try:
            member = f"{key}={quote(value, safe=_SAFE)}"
        except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form
            continue
        if len(member) > MAX_MEMBER_BYTES or size + 1 + len(member) > MAX_HEADER_BYTES:
            continue
        members.append(member)
        size += 1 + len(member)
        if len(members) >= MAX_ENTRIES:
            break
    return ",".join(members)


class W3CBaggagePropagator(TextMapPropagator):
    """Reads and writes the W3C ``baggage`` header.

    With the default getter, a ``dict`` carrier that holds ``traceparent`` under that exact
    name is taken to spell all its keys in lowercase, as the trace context propagator does:
    ``baggage`` is then looked up under its exact name only, sparing a scan of every key on
    each request without baggage.
    """

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = _default_getter,
    ) -> Context:
        values: object = None
        if getter is _default_getter and isinstance(carrier, dict):
            values = carrier.get(BAGGAGE)
            if values is None and _TRACEPARENT in carrier:
                return context if context is not None else Context()
        if type(values) is not str:
            if (
                type(getter) is _WSGI_GETTER
                and type(carrier) is dict  # exactly: a subclass may read otherwise
                and _ENVIRON_BAGGAGE not in carrier  # type: ignore[operator]
            ):
                return context if context is not None else Context()  # what the getter would say
            values = getter.get(carrier, BAGGAGE)
        if context is None:
            context = Context()
        if not values:
            return context
        if isinstance(values, str):
            values = [values]
        entries = parse_baggage(values)
        if not entries:
            return context
        current = get_all(context)
        if current:
            entries = {**current, **entries}
        return _with_entries(entries, context)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = _default_setter,
    ) -> None:
        entries = get_all(context)
        if not entries:
            return
        header = format_baggage(entries.items())
        if header:
            setter.set(carrier, BAGGAGE, header)

    @property
    def fields(self) -> set[str]:
        return {BAGGAGE}
