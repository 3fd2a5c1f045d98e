"""``server_environ_attributes``: the native twin (``sdk/_speedups.c`` environ_attributes) gives
what the Python function gives, key order included, for any environ a server or a middleware
may build; it raises what the Python one raises."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_run.instrumentors import _http
from tests.native_twins import require_native


class Text(str):
    """A middleware's str subclass."""


MISSING = object()

VALUES: dict[str, list[Any]] = {
    "REQUEST_METHOD": ["GET", "POST", "get", "FOO", "", None, 7, Text("GET")],
    "wsgi.url_scheme": ["http", "https", "", None, 1, Text("https")],
    "SCRIPT_NAME": ["", "/api", "/caf\xc3\xa9", None, Text("/t")],
    "PATH_INFO": ["/users/7", "", "/a b", "/~x;y=1,%20", "/\u00e9", "/\x00", None, 5],
    "QUERY_STRING": ["", "a=1", "token=s3cr3t&x=1", None, 3],
    "HTTP_X_FORWARDED_HOST": ["", "proxy.example", "a.example:8080, b", None, 0],
    "HTTP_HOST": ["localhost:5000", "shop.example", "[::1]:8080", "[::1]", "h:x", "", None, 9],
    "SERVER_NAME": ["server.local", "", None],
    "SERVER_PORT": ["8000", 8000, "x", None],
    "REMOTE_ADDR": ["127.0.0.1", "", None, 1],
    "REMOTE_PORT": ["5555", 5555, "", "0123", "\u0663", "x1", None, True, 2.5],
    "HTTP_X_FORWARDED_FOR": ["203.0.113.9, 10.0.0.1", " 10.0.0.9 ", ",", "", None, 4],
    "HTTP_USER_AGENT": ["curl/8", "", None, 1],
    "SERVER_PROTOCOL": ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/3", "http/1.1", "SPDY", "", None],
}


def _outcome(function: Any, environ: dict[str, Any]) -> Any:
    try:
        attributes = function(environ)
    except Exception as exc:  # both must raise the same
        return type(exc)
    return list(attributes.items())


@pytest.fixture(autouse=True)
def native() -> None:
    require_native()
    assert _http.server_environ_attributes is not _http._python_server_environ_attributes


USUAL: dict[str, Any] = {key: values[0] for key, values in VALUES.items()}
CHANGES = [(key, value) for key, values in VALUES.items() for value in [*values[1:], MISSING]]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(CHANGES), max_size=4))
def test_the_native_function_gives_what_the_python_one_gives(
    changes: list[tuple[str, Any]],
) -> None:
    """A usual environ with up to four values changed or left out (the native function's
    usual case and each way out of it)."""
    environ = dict(USUAL)
    for key, value in changes:
        if value is MISSING:
            environ.pop(key, None)
        else:
            environ[key] = value
    python = _outcome(_http._python_server_environ_attributes, environ)
    assert _outcome(_http.server_environ_attributes, environ) == python


def test_a_usual_request_is_read_whole() -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "wsgi.url_scheme": "http",
        "SCRIPT_NAME": "/api",
        "PATH_INFO": "/users/7",
        "QUERY_STRING": "id=1&token=s3cr3t",
        "HTTP_HOST": "localhost:5000",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "5555",
        "HTTP_X_FORWARDED_FOR": " 203.0.113.9 , 10.0.0.1",
        "HTTP_USER_AGENT": "curl/8",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    assert _http.server_environ_attributes(environ) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/api/users/7",
        "url.query": "id=1&token=REDACTED",
        "server.address": "localhost",
        "server.port": 5000,
        "client.address": "203.0.113.9",
        "network.peer.address": "127.0.0.1",
        "network.peer.port": 5555,
        "user_agent.original": "curl/8",
        "network.protocol.version": "1.1",
    }


def test_the_module_helpers_are_read_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replaced redaction or host table is seen by the native function, as by Python."""
    monkeypatch.setattr(_http, "redact_query", lambda query: "redacted by the test")
    monkeypatch.setitem(_http._split_hosts, "cached.example", ("from the cache", 1))
    attributes = _http.server_environ_attributes(
        {"REQUEST_METHOD": "GET", "QUERY_STRING": "a=1", "HTTP_HOST": "cached.example"}
    )
    assert attributes["url.query"] == "redacted by the test"
    assert (attributes["server.address"], attributes["server.port"]) == ("from the cache", 1)


def test_a_mapping_that_is_not_a_dict_is_read_by_the_python_function() -> None:
    class Meta(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            return "POST" if key == "REQUEST_METHOD" else super().get(key, default)

    attributes = _http.server_environ_attributes(Meta(REQUEST_METHOD="GET", HTTP_HOST="h"))
    assert attributes["http.request.method"] == "POST"
