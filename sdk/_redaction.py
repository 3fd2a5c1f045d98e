"""Secrets removed from URLs and from free text before either is recorded on a span.

One place for every layer: the HTTP instrumentors scrub ``url.full`` and ``url.query`` with
``scrub_url``/``scrub_query``; spans scrub exception messages, stack traces and status
descriptions with ``scrub_text`` (a library's message typically holds the URL it failed on,
query string included); the distro scrubs endpoints shown by ``--list`` and warnings.

Two things are removed: URL userinfo (everything before the *last* ``@`` of the authority,
so ``https://u:p@ss@host/`` loses the whole password) and the values of sensitive query (and
fragment) parameters, whose keys are compared case-insensitively after percent-decoding.

Text comes from outside (a server's error message, a URL an attacker chose), so every scan
here is linear: ``str.find`` loops and one regular expression that is a single character
class (it cannot backtrack). Nothing is compiled or imported until first use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = [
    "DEFAULT_SENSITIVE_QUERY_KEYS",
    "REDACTED",
    "configure_query_keys",
    "query_keys",
    "scrub_query",
    "scrub_text",
    "scrub_url",
    "sensitive_query_keys",
]

REDACTED: Final = "REDACTED"

#: Query keys whose values are replaced by ``REDACTED``: the semantic conventions' list
#: (``AWSAccessKeyId``, ``Signature``, ``sig``, ``X-Goog-Signature``) and what OAuth, cloud
#: storage signed URLs and API keys carry. Stored lower-case: the comparison ignores case.
DEFAULT_SENSITIVE_QUERY_KEYS: Final = frozenset(
    key.lower()
    for key in (
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "token",
        "password",
        "passwd",
        "secret",
        "api_key",
        "apikey",
        "key",
        "sig",
        "signature",
        "AWSAccessKeyId",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "X-Goog-Signature",
        "X-Goog-Credential",
    )
)

_keys: frozenset[str] = DEFAULT_SENSITIVE_QUERY_KEYS
# The end of a URL-like word in free text: a single character class, so no backtracking.
_WORD: re.Pattern[str] | None = None
_AUTHORITY: re.Pattern[str] | None = None


def query_keys(spec: Iterable[str]) -> frozenset[str]:
    """The defaults with ``spec`` applied: ``name`` adds a key, ``-name`` removes one.

    Keys are compared lower-case; an empty entry or a lone ``-`` is ignored.
    """
    keys = set(DEFAULT_SENSITIVE_QUERY_KEYS)
    for raw in spec:
        entry = raw.strip()
        if entry.startswith("-"):
            keys.discard(entry[1:].strip().lower())
        elif entry:
            keys.add(entry.lower())
    return frozenset(keys)


def configure_query_keys(keys: frozenset[str]) -> None:
    """Make ``keys`` (from ``query_keys``) the sensitive keys of every later scrub."""
    global _keys
    _keys = keys


def sensitive_query_keys() -> frozenset[str]:
    """The sensitive keys in effect, lower-case."""
    return _keys


def _is_encoded_sensitive(key: str, keys: frozenset[str]) -> bool:
    """For a key with ``%`` or ``+``: whether it is sensitive once decoded."""
    from urllib.parse import unquote_plus  # only for an encoded key: not on the start-up path

    return unquote_plus(key).strip().lower() in keys


def scrub_query(query: str) -> str:
    """``query`` (or a fragment) with the values of sensitive keys replaced by ``REDACTED``."""
    if "=" not in query:
        return query
    keys = _keys
    parts = query.split("&")
    changed = False
    for index, part in enumerate(parts):
        key, sep, value = part.partition("=")
        if not sep or value == REDACTED:
            continue
        if key.lower() in keys or (("%" in key or "+" in key) and _is_encoded_sensitive(key, keys)):
            parts[index] = f"{key}={REDACTED}"
            changed = True
    return "&".join(parts) if changed else query


def _scrub_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority_end = len(rest)
    for stop in "/?#":
        position = rest.find(stop, 0, authority_end)
        if position != -1:
            authority_end = position
    at = rest.rfind("@", 0, authority_end)
    if at == -1:
        return url
    return f"{scheme}://{REDACTED}:{REDACTED}{rest[at:]}"


def scrub_url(url: str) -> str:
    """``url`` as it may be recorded: userinfo and sensitive query/fragment values replaced."""
    if "@" in url:
        url = _scrub_userinfo(url)
    if "=" not in url:
        return url
    head, fsep, fragment = url.partition("#")
    if fsep:
        fragment = scrub_query(fragment)
    head, qsep, query = head.partition("?")
    if qsep:
        query = scrub_query(query)
    return f"{head}{qsep}{query}{fsep}{fragment}"


def _compile() -> tuple[re.Pattern[str], re.Pattern[str]]:
    global _WORD, _AUTHORITY
    _WORD = re.compile(r"[^\s'\"<>`()\[\]{}|\\]*")
    _AUTHORITY = re.compile(r"[^\s'\"<>`()\[\]{}|\\/?#]*")
    return _WORD, _AUTHORITY


def _scrub_text_queries(text: str, marker: str, word: re.Pattern[str]) -> str:
    """Each ``?query`` (or ``#fragment``) word in ``text`` scrubbed; one pass, left to right."""
    pieces: list[str] = []
    done = 0
    start = text.find(marker)
    while start != -1:
        match = word.match(text, start + 1)
        end = match.end() if match is not None else start + 1
        region = text[start + 1 : end]
        if marker == "?":
            query, fsep, fragment = region.partition("#")
            scrubbed = scrub_query(query) + fsep + scrub_query(fragment)
        else:
            scrubbed = scrub_query(region)
        if scrubbed != region:
            pieces.append(text[done : start + 1])
            pieces.append(scrubbed)
            done = end
        start = text.find(marker, max(end, start + 1))
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _scrub_text_userinfo(text: str, authority: re.Pattern[str]) -> str:
    """Userinfo removed from each ``scheme://user:pass@host`` in ``text``."""
    pieces: list[str] = []
    done = 0
    start = text.find("://")
    while start != -1:
        begin = start + 3
        match = authority.match(text, begin)
        end = match.end() if match is not None else begin
        at = text.rfind("@", begin, end)
        if at != -1:
            pieces.append(text[done:begin])
            pieces.append(f"{REDACTED}:{REDACTED}")
            done = at
        start = text.find("://", max(end, begin))
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def scrub_text(text: str) -> str:
    """Free text (an exception message, a stack trace) with every URL-like part scrubbed.

    URLs are found by their ``://`` (userinfo), and query strings by their ``?`` whether or
    not a scheme comes first: urllib3 writes ``Max retries exceeded with url: /p?token=...``.
    A word ends at whitespace, a quote or a bracket, so a value followed by ``)`` loses only
    the value. Linear in the length of ``text``.
    """
    has_query = "=" in text and ("?" in text or "#" in text)
    has_userinfo = "@" in text and "://" in text
    if not (has_query or has_userinfo):
        return text
    if _WORD is None or _AUTHORITY is None:
        word, authority = _compile()
    else:
        word, authority = _WORD, _AUTHORITY
    if has_userinfo:
        text = _scrub_text_userinfo(text, authority)
    if has_query:
        text = _scrub_text_queries(text, "?", word)
        if "#" in text:
            text = _scrub_text_queries(text, "#", word)
    return text
