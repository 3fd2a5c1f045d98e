"""What a database span records of a statement: no value ever, the operation and the table."""

from __future__ import annotations

import pytest

from telemetry_run.instrumentors._sql import describe, sanitize


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT * FROM users WHERE name = 'bob' AND id = 42",
            "SELECT * FROM users WHERE name = ? AND id = ?",
        ),
        ("SELECT 'it''s', 'a\\'b' FROM t", "SELECT ?, ? FROM t"),
        ("SELECT E'x\\n', X'ABCD', B'0101', U&'d\\0061t' FROM t", "SELECT ?, ?, ?, ? FROM t"),
        ("SELECT $$secret$$, $tag$ 'quoted' $tag$ FROM t", "SELECT ?, ? FROM t"),
        ("SELECT 1.5e-3, .5, 0x1F, -7 FROM t", "SELECT ?, ?, ?, -? FROM t"),
        ("SELECT t1.col_2 FROM t1 WHERE a = $1 AND b = %s AND c = ? AND d = :name", None),
        ('SELECT "col 1" FROM "My Table"', None),
        ("SELECT a FROM t -- it's 3\nWHERE b = 'x'", "SELECT a FROM t -- it's 3\nWHERE b = ?"),
        ("SELECT a FROM t WHERE b = 'unterminated 123", "SELECT a FROM t WHERE b = ?"),
    ],
)
def test_literals_become_placeholders_and_the_rest_is_kept(sql: str, expected: str | None) -> None:
    assert sanitize(sql) == (sql if expected is None else expected)


def test_the_scan_is_linear_on_hostile_input() -> None:
    # Inputs that make a backtracking pattern explode: unterminated quotes and escapes, long
    # runs of digits and dollar signs. Each is scanned in one pass (a hang would time out).
    for hostile in ("'" + "\\'" * 50_000, "$a" * 50_000, "1e" * 50_000, "'" + "''" * 50_000 + "x"):
        text = sanitize(hostile)
        assert "\\'" not in text[1:] and len(text) <= len(hostile)


@pytest.mark.parametrize(
    ("sql", "operation", "collection"),
    [
        ("select * from users where id = 1", "SELECT", "users"),
        ("INSERT INTO orders (a, b) VALUES (%s, %s)", "INSERT", "orders"),
        ("UPDATE accounts SET x = 1", "UPDATE", "accounts"),
        ("DELETE FROM sessions", "DELETE", "sessions"),
        ("CREATE TABLE IF NOT EXISTS kv (k TEXT)", "CREATE", "kv"),
        ('SELECT * FROM "Mixed Case"', "SELECT", "Mixed Case"),
        ("SELECT * FROM a JOIN b ON a.id = b.id", "SELECT", None),
        ("SELECT * FROM a, b", "SELECT", None),
        ("SELECT * FROM (SELECT 1) AS q", "SELECT", None),
        ("BEGIN", "BEGIN", None),
        ("  /* hint */ select 1", "SELECT", None),
    ],
)
def test_operation_and_collection(sql: str, operation: str, collection: str | None) -> None:
    described = describe(sql)
    assert (described.operation, described.collection) == (operation, collection)
