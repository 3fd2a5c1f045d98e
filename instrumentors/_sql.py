"""SQL text for spans: literals replaced by ``?``, and the operation and table, in one linear pass.

``db.query.text`` must never carry the application's values: every string literal (``'...'``
with ``''`` or backslash escapes, ``E'...'``, ``X'...'``, PostgreSQL's ``$tag$...$tag$``) and
every number becomes ``?``. Placeholders (``%s``, ``$1``, ``?``, ``:name``), identifiers
(``"quoted"`` ones too) and comments are kept. The scan is a hand-written loop that looks at
each character at most twice (``str.find`` for a literal's end): linear in the statement's
length, whatever its content, where a regex with nested repetition can backtrack. An
unterminated literal is replaced up to the end: when in doubt, less is recorded.

Statements repeat (parameterised queries), so ``describe`` keeps the last ones it scanned.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["Statement", "describe", "sanitize"]

_IDENTIFIER: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
_DIGITS: Final = frozenset("0123456789")
_NUMBER_TAIL: Final = frozenset("0123456789abcdefABCDEFxX._")
_PREFIXES: Final = frozenset("eEbBxXnNuU")  # E'...', B'...', X'...', N'...', U&'...'
#: Operations whose next word (after INTO/FROM/TABLE...) is the one table they act on.
_TARGET_AFTER: Final = {
    "SELECT": "FROM",
    "DELETE": "FROM",
    "INSERT": "INTO",
    "REPLACE": "INTO",
    "UPDATE": "",
    "CREATE": "TABLE",
    "DROP": "TABLE",
    "ALTER": "TABLE",
    "TRUNCATE": "",
}
_SKIPPED: Final = frozenset({"TABLE", "IF", "NOT", "EXISTS", "ONLY", "OR", "IGNORE", "TEMP"})
_CACHE_SIZE: Final = 256
_WORDS: Final = 16  # enough words to find the operation and its table


class Statement(NamedTuple):
    """What a span records about one statement."""

    text: str  #: ``db.query.text``: the statement, literals replaced by ``?``
    operation: str | None  #: ``db.operation.name``: its first keyword, upper case
    collection: str | None  #: ``db.collection.name``: the one table it names, when plain


def _skip_comment(sql: str, i: int, n: int) -> int:
    """The index after the comment starting at ``i``, or ``i`` when none starts there."""
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return n if end < 0 else end
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        return n if end < 0 else end + 2
    return i


def _quoted_end(sql: str, i: int, n: int) -> int:
    """The index after the ``'...'`` literal opening at ``i`` (escapes ``''`` and ``\\``)."""
    i += 1
    while i < n:
        c = sql[i]
        if c == "\\":
            i += 2
        elif c == "'":
            if i + 1 < n and sql[i + 1] == "'":
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def _dollar_end(sql: str, i: int, n: int) -> int:
    """The index after a ``$tag$...$tag$`` literal at ``i``, or -1 when none opens there."""
    j = i + 1
    while j < n and sql[j] in _IDENTIFIER and sql[j] != "$":
        j += 1
    if j >= n or sql[j] != "$" or (j > i + 1 and sql[i + 1] in _DIGITS):
        return -1  # ``$1`` is a placeholder
    tag = sql[i : j + 1]
    end = sql.find(tag, j + 1)
    return n if end < 0 else end + len(tag)


def sanitize(sql: str) -> str:
    """``sql`` with each literal replaced by ``?``; linear time."""
    return _scan(sql)[0]


def _literal_start(sql: str, i: int) -> int:
    """Where the literal whose quote is at ``i`` starts: its E, X, B, N or U& prefix too."""
    if i > 0 and sql[i - 1] in _PREFIXES and (i == 1 or sql[i - 2] not in _IDENTIFIER):
        return i - 1
    if i > 1 and sql[i - 1] == "&" and sql[i - 2] in "uU":
        return i - 2
    return i


def _number_end(sql: str, i: int, n: int) -> int:
    """The index after the number at ``i`` (decimal, exponent, hex)."""
    j = i + 1
    while j < n:
        d = sql[j]
        signed = d in "+-" and sql[j - 1] in "eE" and not sql.startswith("0x", i)
        if not (d in _NUMBER_TAIL or signed):
            break
        j += 1
    return j


def _scan(sql: str) -> tuple[str, list[str]]:
    """The sanitized text, and the statement's first words (outside literals), as written."""
    out: list[str] = []
    words: list[str] = []
    n = len(sql)
    i = 0
    start = 0  # the start of the text not yet copied to ``out``
    while i < n:
        c = sql[i]
        cut = end = -1  # a literal to replace: sql[cut:end]
        if c == "'":
            cut, end = _literal_start(sql, i), _quoted_end(sql, i, n)
        elif c == "$" and (i == 0 or sql[i - 1] not in _IDENTIFIER):
            cut, end = i, _dollar_end(sql, i, n)
        elif c in _DIGITS or (c == "." and i + 1 < n and sql[i + 1] in _DIGITS):
            if i == 0 or sql[i - 1] not in _IDENTIFIER:  # t1, col_2: part of a name
                cut, end = i, _number_end(sql, i, n)
        elif c in '"`':
            end = sql.find(c, i + 1)
            end = n if end < 0 else end + 1
            if len(words) < _WORDS:
                words.append(sql[i:end])
            i = end
            continue
        elif c in "-/":
            end = _skip_comment(sql, i, n)
            i = end if end > i else i + 1
            continue
        elif c in _IDENTIFIER:
            end = i + 1
            while end < n and sql[end] in _IDENTIFIER:
                end += 1
            if len(words) < _WORDS and not (end < n and sql[end] == "'"):
                words.append(sql[i:end])
            i = end
            continue
        elif c in ",(" and len(words) < _WORDS:
            words.append(c)
        if end < 0:
            i += 1
            continue
        out.append(sql[start:cut])
        out.append("?")
        i = start = end
    if start == 0:
        return sql, words
    out.append(sql[start:])
    return "".join(out), words


def _collection(operation: str, words: list[str]) -> str | None:
    """The table a plain one-table statement names (None for joins, lists, subqueries)."""
    after = _TARGET_AFTER.get(operation)
    if after is None:
        return None
    upper = [word.upper() for word in words]
    if "JOIN" in upper:
        return None
    index = 1
    if after:
        try:
            index = upper.index(after) + 1
        except ValueError:
            return None
    while index < len(words) and upper[index] in _SKIPPED:
        index += 1
    if index >= len(words) or words[index] in ",(" or "," in words[index + 1 : index + 3]:
        return None
    return words[index].strip('"`')


_cache: dict[str, Statement] = {}


def describe(sql: str) -> Statement:
    """The sanitized text, the operation and the collection of ``sql`` (the last ones cached)."""
    found = _cache.get(sql)
    if found is not None:
        return found
    text, words = _scan(sql)
    first = words[0] if words else ""
    operation = first.upper() if first and first not in ",(" and first[0] not in '"`' else None
    statement = Statement(text, operation, _collection(operation, words) if operation else None)
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()  # atomic under threads, where evicting one key by iterating is not
    _cache[sql] = statement
    return statement
