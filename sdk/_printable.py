"""Values that came from outside (the environment, a peer, a server) made safe to print.

A warning quotes what the user or an attacker wrote: an ESC sequence would recolour or rewrite
the terminal, a CR or LF would forge a log line of its own, a bidi override would reorder what
the reader sees. Every value we print goes through ``escape`` or ``quote`` (our log handler
escapes each whole message again, for what a call site missed); a secret goes through ``mask``
and shows only its length. Nothing here is imported beyond builtins: this loads at start-up.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LIMIT", "escape", "mask", "quote"]

#: The longest value a diagnostic quotes; the rest is cut (a log line is not a data dump).
LIMIT: Final = 200


def mask(value: str) -> str:
    """A secret as ``--list`` and warnings show it: its length only."""
    return f"<{len(value)} characters, hidden>"


def _escaped(char: str) -> str:
    return repr(char)[1:-1]  # \x1b, \n, \u202e: what the string's repr writes


def escape(text: str, limit: int | None = LIMIT) -> str:
    """``text`` with every character ``str.isprintable`` refuses (controls, CR, LF, DEL, C1,
    format characters such as bidi overrides, line and paragraph separators) written as its
    escape, and cut to ``limit`` characters (``None``: no cut). Plain text comes back as is."""
    cut = limit is not None and len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escaped(c) for c in text)
    return text + "..." if cut else text


def quote(text: str, limit: int = LIMIT) -> str:
    """``repr(text)`` cut to ``limit`` characters: quoted, every non-printable escaped."""
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)
