"""Baggage for application code: key/value pairs that travel with the trace to the next service.

Each call returns a new ``Context`` (nothing changes what another thread or task sees); make it
current with ``telemetry_run.context.attach``, and the instrumented clients send it in the W3C
``baggage`` header::

    from telemetry_run import baggage, context

    token = context.attach(baggage.set("tenant", "acme"))
    try:
        requests.get(url)            # baggage: tenant=acme
        baggage.get("tenant")        # "acme"
    finally:
        context.detach(token)

The names are short forms of ``opentelemetry.baggage``'s (``get_baggage``, ``set_baggage``,
``remove_baggage``, ``get_all``, ``clear``). ``set`` keeps what the W3C header can carry: a
key that is not an RFC 7230 token, a value that is not a string, more than 180 entries, a
member over 4096 bytes or a header over 8192 bytes (percent-encoded) is refused with one
warning and the context comes back unchanged: never an exception in the application.
"""

from __future__ import annotations

from collections.abc import Mapping as _Mapping

from telemetry_run.sdk import baggage as _baggage
from telemetry_run.sdk.context import Context as _Context
from telemetry_run.sdk.context import get_current as _get_current

__all__ = ["clear", "get", "get_all", "remove", "set"]


def get(name: str, context: _Context | None = None) -> str | None:
    """The value of ``name`` in the baggage of ``context`` (the current one if None)."""
    return _baggage.get_baggage(name, context)


def get_all(context: _Context | None = None) -> _Mapping[str, str]:
    """Every entry of the baggage of ``context`` (the current one if None), read-only."""
    return _baggage.get_all(context)


def set(name: str, value: str, context: _Context | None = None) -> _Context:
    """A new context whose baggage has ``name`` set to ``value``.

    Refused (one warning, ``context`` returned as it is) when the entry could not be sent in
    a W3C ``baggage`` header; see the module's documentation for the limits.
    """
    problem = _refusal(name, value, _baggage.get_all(context))
    if problem is not None:
        _warn(name, problem)
        return context if context is not None else _get_current()
    return _baggage.set_baggage(name, value, context)


def remove(name: str, context: _Context | None = None) -> _Context:
    """A new context whose baggage lacks ``name``."""
    return _baggage.remove_baggage(name, context)


def clear(context: _Context | None = None) -> _Context:
    """A new context without baggage."""
    return _baggage.clear(context)


def _refusal(name: object, value: object, entries: _Mapping[str, str]) -> str | None:
    """Why ``name=value`` cannot join ``entries`` in a W3C header, or None when it can."""
    from telemetry_run.sdk.propagation import baggage as w3c

    if not isinstance(name, str) or not w3c._is_token(name):
        return "the key is not an RFC 7230 token"
    if not isinstance(value, str):
        return f"the value is a {type(value).__name__}, not a str"
    member = _member_size(name, value)
    if member is None:
        return "the value has no UTF-8 form"
    if member > w3c.MAX_MEMBER_BYTES:
        return f"the entry is {member} bytes encoded, over {w3c.MAX_MEMBER_BYTES}"
    others = [(key, text) for key, text in entries.items() if key != name]
    if len(others) >= w3c.MAX_ENTRIES:
        return f"the baggage holds {w3c.MAX_ENTRIES} entries already"
    size = member + sum(1 + (_member_size(key, text) or 0) for key, text in others)
    if size > w3c.MAX_HEADER_BYTES:
        return f"the baggage would be {size} bytes encoded, over {w3c.MAX_HEADER_BYTES}"
    return None


def _member_size(name: str, value: str) -> int | None:
    """Length of ``name=value`` as the propagator writes it; None if it cannot be encoded."""
    from urllib.parse import quote

    from telemetry_run.sdk.propagation.baggage import _SAFE

    try:
        return len(name) + 1 + len(quote(value, safe=_SAFE))
    except UnicodeEncodeError:
        return None


def _warn(name: object, problem: str) -> None:
    from telemetry_run.sdk._printable import quote
    from telemetry_run.sdk.diagnostics import get_diagnostics

    get_diagnostics().warn(
        "baggage.set",
        "telemetry_run.baggage.set(%s, ...) refused: %s; the baggage is unchanged",
        quote(str(name)),
        problem,
    )
