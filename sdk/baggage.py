"""Baggage: application key/value pairs that ride along with the context across processes.

Kept as one read-only mapping under one context key, so setting an entry copies a small dict
and never changes what another context (another task or thread) sees. Same calls as
``opentelemetry.baggage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from telemetry_run.sdk.context import Context, create_key, get_value, set_value

__all__ = ["clear", "get_all", "get_baggage", "remove_baggage", "set_baggage"]

_BAGGAGE_KEY: Final = create_key("baggage")
_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})


def get_all(context: Context | None = None) -> Mapping[str, str]:
    """Every baggage entry of ``context`` (the current one if None), read-only."""
    entries = get_value(_BAGGAGE_KEY, context)
    return entries if type(entries) is MappingProxyType else _EMPTY


def get_baggage(name: str, context: Context | None = None) -> str | None:
    return get_all(context).get(name)


def set_baggage(name: str, value: str, context: Context | None = None) -> Context:
    """A new context whose baggage has ``name`` set to ``value``."""
    entries = dict(get_all(context))
    entries[name] = value
    return _with_entries(entries, context)


def remove_baggage(name: str, context: Context | None = None) -> Context:
    """A new context whose baggage lacks ``name``."""
    entries = dict(get_all(context))
    entries.pop(name, None)
    return _with_entries(entries, context)


def clear(context: Context | None = None) -> Context:
    """A new context without baggage."""
    return _with_entries({}, context)


def _with_entries(entries: dict[str, str], context: Context | None) -> Context:
    return set_value(_BAGGAGE_KEY, MappingProxyType(entries), context)
