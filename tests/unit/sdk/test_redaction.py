"""The one scrub of URLs and free text: userinfo and sensitive query values never recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from telemetry_run.sdk import _redaction
from telemetry_run.sdk._redaction import (
    DEFAULT_SENSITIVE_QUERY_KEYS,
    configure_query_keys,
    query_keys,
    scrub_query,
    scrub_text,
    scrub_url,
)


@pytest.fixture(autouse=True)
def default_keys() -> Iterator[None]:
    configure_query_keys(DEFAULT_SENSITIVE_QUERY_KEYS)
    yield
    configure_query_keys(DEFAULT_SENSITIVE_QUERY_KEYS)


@pytest.mark.parametrize(
    "key",
    [
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
        "Signature",
        "AWSAccessKeyId",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "X-Goog-Signature",
        "X-Goog-Credential",
    ],
)
def test_every_default_key_is_redacted(key: str) -> None:
    url = f"https://h/p?a=1&{key}=s3cr3t&b=2"
    assert scrub_url(url) == f"https://h/p?a=1&{key}=REDACTED&b=2"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("TOKEN=s", "TOKEN=REDACTED"),  # any case
        ("x-amz-signature=s", "x-amz-signature=REDACTED"),
        ("api%5Fkey=s", "api%5Fkey=REDACTED"),  # percent-encoded key
        ("%61ccess_token=s", "%61ccess_token=REDACTED"),
        ("client+secret=s&client%5fsecret=t", "client+secret=s&client%5fsecret=REDACTED"),
        ("token=a&token=b", "token=REDACTED&token=REDACTED"),  # every occurrence
        ("tokens=s&mytoken=s&token", "tokens=s&mytoken=s&token"),  # whole keys only
        ("q=token%3Ds", "q=token%3Ds"),  # a value that reads like a pair is a value
    ],
)
def test_keys_are_matched_case_insensitively_after_percent_decoding(
    query: str, expected: str
) -> None:
    assert scrub_query(query) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:p@ss@host/x", "https://REDACTED:REDACTED@host/x"),  # the last @
        ("https://u:p@ss@host", "https://REDACTED:REDACTED@host"),
        ("https://user@host:8080/?a=1", "https://REDACTED:REDACTED@host:8080/?a=1"),
        ("https://host/a@b?c=d", "https://host/a@b?c=d"),  # an @ in the path is not userinfo
        ("https://host/cb#access_token=t&x=1", "https://host/cb#access_token=REDACTED&x=1"),
        ("/relative?sig=abc", "/relative?sig=REDACTED"),
        ("https://host/plain", "https://host/plain"),
    ],
)
def test_urls(url: str, expected: str) -> None:
    assert scrub_url(url) == expected


def test_a_user_list_adds_keys_and_removes_defaults_only_when_asked() -> None:
    keys = query_keys(["Session_ID", " -key ", "-", ""])
    assert "session_id" in keys and "key" not in keys
    assert keys - {"session_id"} == DEFAULT_SENSITIVE_QUERY_KEYS - {"key"}
    configure_query_keys(keys)
    assert scrub_url("https://h/?key=k&session_id=s") == "https://h/?key=k&session_id=REDACTED"
    assert "s3" not in scrub_text("failed: /p?SESSION_ID=s3 (x)")


REQUESTS_MESSAGE = (
    "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
    "/v1/items?api_key=s3cr3t&page=2 (Caused by NewConnectionError('<urllib3.connection."
    "HTTPConnection object at 0x7f>: Failed to establish a new connection: [Errno 111] "
    "Connection refused'))"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            REQUESTS_MESSAGE,
            REQUESTS_MESSAGE.replace("api_key=s3cr3t", "api_key=REDACTED"),
        ),
        (
            "404 Client Error: NOT FOUND for url: https://a:s3cr3t@h/x?token=s3cr3t#frag",
            "404 Client Error: NOT FOUND for url: https://REDACTED:REDACTED@h/x?token=REDACTED#frag",
        ),
        (
            "('Connection aborted.', 'https://h/?X-Amz-Signature=s3cr3t')",
            "('Connection aborted.', 'https://h/?X-Amz-Signature=REDACTED')",
        ),
        (
            'see <https://h/cb#id_token=s3cr3t> and "https://u:s3cr3t@h"',
            'see <https://h/cb#id_token=REDACTED> and "https://REDACTED:REDACTED@h"',
        ),
        (
            '  File "app.py", line 3, in <module>\n    get("https://u:p@ss@h/?sig=s3cr3t")\n',
            '  File "app.py", line 3, in <module>\n    get("https://REDACTED:REDACTED@h/?sig=REDACTED")\n',
        ),
        ("no url here: a=b? c=d # e=f", "no url here: a=b? c=d # e=f"),
        ("x = 1  # token=comment", "x = 1  # token=comment"),
    ],
)
def test_text_scrubs_every_url_in_it(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


def test_text_without_anything_to_scrub_is_returned_as_it_is() -> None:
    text = "ValueError: nothing secret"
    assert scrub_text(text) is text


@pytest.mark.parametrize(
    "hostile",
    [
        "?" * 200_000,
        "?a" * 100_000,
        "https://" * 50_000 + "@",
        "://@" * 50_000,
        "?token=" + "=" * 200_000,
        "?" + "&token=x" * 25_000,
        "#" + "a=b&" * 50_000,
        "https://" + "@" * 200_000 + "?" + "token=x&" * 10_000,
    ],
)
def test_hostile_text_is_scrubbed_in_linear_time(
    hostile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted, not timed: each character reaches the query scrub at most once per marker
    (``?`` then ``#``), so the work grows with the text, never with its square."""
    seen = {"characters": 0}
    original = _redaction.scrub_query

    def counting(query: str) -> str:
        seen["characters"] += len(query)
        return original(query)

    monkeypatch.setattr(_redaction, "scrub_query", counting)
    scrubbed = scrub_text(hostile)
    assert "token=x" not in scrubbed
    assert seen["characters"] <= 2 * max(len(hostile), len(scrubbed))


def test_the_scrub_patterns_cannot_backtrack() -> None:
    """Each pattern is one character class: it matches greedily and has nothing to retry."""
    word, authority = _redaction._compile()
    for pattern in (word, authority):
        assert pattern.pattern.startswith("[^") and pattern.pattern.endswith("]*")
        assert pattern.pattern.count("[^") == 1
