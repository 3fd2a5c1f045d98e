"""Parsers for environment values, following the OpenTelemetry specification's rules.

Each parser takes the raw (non-empty, stripped) text and returns the value or raises
``InvalidValue`` with a short reason; the registry turns that into one warning naming the
variable and the value, then the default. Empty means unset, so parsers never see "".
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = [
    "InvalidValue",
    "parse_bool",
    "parse_duration_ms",
    "parse_enum",
    "parse_int",
    "parse_key_values",
    "parse_list",
    "parse_positive_ms",
    "parse_str",
    "parse_timeout_ms",
]

_INT_MAX = 2**31 - 1


class InvalidValue(ValueError):
    """The value cannot be used; the message says why (it is shown after the value)."""


def parse_str(raw: str) -> str:
    return raw


def parse_bool(raw: str) -> bool:
    """Only case-insensitive ``true`` is true; ``false`` is false; anything else warns."""
    lowered = raw.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise InvalidValue("is not a boolean (true or false)")


def parse_int(minimum: int = 0, maximum: int = _INT_MAX) -> Callable[[str], int]:
    """An integer in ``[minimum, maximum]``; no custom meaning for negatives (spec)."""

    def parse(raw: str) -> int:
        try:
            value = int(raw, 10)
        except ValueError:
            raise InvalidValue("is not an integer") from None
        if not minimum <= value <= maximum:
            raise InvalidValue(f"is out of range [{minimum}, {maximum}]")
        return value

    return parse


def parse_duration_ms(raw: str) -> float:
    """Integer milliseconds (>= 0), returned in seconds."""
    return parse_int(0)(raw) / 1000.0


def parse_positive_ms(raw: str) -> float:
    """Integer milliseconds (> 0), returned in seconds: an interval that cannot be zero."""
    return parse_int(1)(raw) / 1000.0


def parse_timeout_ms(raw: str) -> float:
    """Integer milliseconds, returned in seconds; 0 means no limit (``math.inf``)."""
    millis = parse_int(0)(raw)
    return math.inf if millis == 0 else millis / 1000.0


def parse_enum(*choices: str) -> Callable[[str], str]:
    """Case-insensitive; the result is the lower-cased choice."""
    allowed = {c.lower() for c in choices}

    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in allowed:
            raise InvalidValue(f"is not one of {', '.join(sorted(allowed))}")
        return value

    return parse


def parse_list(raw: str) -> tuple[str, ...]:
    """Comma-separated names, trimmed, empty items and duplicates dropped, order kept."""
    seen: dict[str, None] = {}
    for item in raw.split(","):
        name = item.strip()
        if name:
            seen[name] = None
    return tuple(seen)


def parse_key_values(raw: str) -> tuple[tuple[str, str], ...]:
    """``k1=v1,k2=v2`` with percent-encoded keys and values (W3C Baggage syntax).

    A member without ``=`` or with an empty key makes the whole value invalid: the
    specification says to discard the variable rather than guess.
    """
    from urllib.parse import unquote  # only when such a variable is set: start-up stays cheap

    pairs: list[tuple[str, str]] = []
    for member in raw.split(","):
        if not member.strip():
            continue
        key, sep, value = member.partition("=")
        key = unquote(key.strip())
        if not sep or not key:
            raise InvalidValue("has a member that is not key=value")
        pairs.append((key, unquote(value.strip())))
    return tuple(pairs)
