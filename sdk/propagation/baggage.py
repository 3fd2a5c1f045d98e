"""W3C Baggage (``baggage`` header): the context's baggage entries in and out of carriers.

Values are percent-encoded UTF-8 so any text survives the trip. A peer may send anything, so a
malformed member is skipped rather than failing the header, and the size limits bound both the
work done on a hostile header and what we send.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from telemetry_run.sdk.baggage import _with_entries, get_all
from telemetry_run.sdk.context import Context
from telemetry_run.sdk.propagation._carriers import Getter, Setter
from telemetry_run.sdk.propagation._textmap import (
    CarrierT,
    TextMapPropagator,
    _default_getter,
    _default_setter,
)

__all__ = ["W3CBaggagePropagator"]

BAGGAGE: Final = "baggage"
_TRACEPARENT: Final = "traceparent"  # see W3CBaggagePropagator

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
# included, whatever its length: the cost of a header of commas is bounded too.
_MAX_ITEMS: Final = 2 * MAX_ENTRIES


def _is_token(text: str) -> bool:
    """RFC 7230 3.2.6 token."""
    return bool(text) and text.isascii() and not text.encode().translate(None, _TOKEN)


# Sent unencoded: baggage-octets other than '%' (the escape), '=' and '+' (read as a space by
# some peers' decoders). Letters, digits and "_.-~" are always kept by quote().
_SAFE: Final = "!#$&'()*/:<>?@[]^`{|}"


def parse_baggage(headers: Iterable[str]) -> dict[str, str]:
    """The entries of the combined ``baggage`` headers, within the size limits.

    Only the first 8192 characters and 360 comma-separated items are read (a member that
    crosses either limit is dropped), members longer than 4096 are skipped, and reading stops
    at 180 entries. A later duplicate key wins. (Characters are bytes here: a valid member is
    ASCII.) Linear in the size read, with no regular expression.
    """
    from urllib.parse import unquote  # not at import: this module loads at every start-up

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
        if _add_plain(chunk, members, entries):
            continue
        for member in members:
            if len(member) > MAX_MEMBER_BYTES:
                continue
            # key OWS "=" OWS value OWS, then properties after ";", accepted and dropped.
            # (Inlined: this loop runs up to 360 times per header.)
            key, sep, value = member.partition("=")
            if not sep:
                continue
            if ";" in value:
                value = value.partition(";")[0]
            key = key.strip(" \t")
            value = value.strip(" \t")
            if not (key and key.isascii() and value.isascii()):
                continue
            if key.encode().translate(None, _TOKEN) or value.encode().translate(None, _OCTETS):
                continue
            entries[key] = unquote(value, errors="replace") if "%" in value else value
            if len(entries) >= MAX_ENTRIES:
                return entries
    return entries


def _add_plain(chunk: str, members: list[str], entries: dict[str, str]) -> bool:
    """Add ``members`` in one pass if every one is a plain ``token=octets`` (no OWS, properties
    or escapes: what senders write); False, adding nothing, if any is not.

    The whole list is checked with a few C calls instead of a dozen per member, which keeps a
    full 8 KB header well inside the extract budget.
    """
    if not members:
        return True
    # Quick refusals first, each one C call over the chunk the members were cut from.
    if not chunk.isascii() or " " in chunk or "\t" in chunk or "%" in chunk or not all(members):
        return False
    pairs = [member.partition("=") for member in members]
    keys = [pair[0] for pair in pairs]
    values = [pair[2] for pair in pairs]
    if not (all(keys) and all([pair[1] for pair in pairs])):
        return False
    key_text = "".join(keys)
    value_text = "".join(values)
    if key_text.encode().translate(None, _TOKEN) or value_text.encode().translate(None, _OCTETS):
        return False
    if max(map(len, members)) > MAX_MEMBER_BYTES:
        return False
    added = {**entries, **dict(zip(keys, values, strict=True))}
    if len(added) >= MAX_ENTRIES:
        return False  # the member-by-member loop stops exactly at the limit
    entries.update(added)
    return True


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
