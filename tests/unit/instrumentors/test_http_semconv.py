"""The shared HTTP conventions: names, attributes, redaction, capture and exclusion."""

from __future__ import annotations

import pytest

from telemetry_run._env import InvalidValue
from telemetry_run.config import Config
from telemetry_run.instrumentors import _http, plugin
from telemetry_run.testing import SpanRecorder, config_for
from tests.native_twins import require_native


@pytest.fixture(autouse=True, params=["native", "python"])
def environ_twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test with ``server_environ_attributes`` native (``sdk/_speedups.c``), then Python."""
    if request.param == "python":
        python = _http._python_server_environ_attributes
        monkeypatch.setattr(_http, "server_environ_attributes", python)
    else:
        require_native()
        assert _http.server_environ_attributes is not _http._python_server_environ_attributes
    return str(request.param)


def test_server_names_follow_the_conventions() -> None:
    assert _http.server_span_name("GET", "/users/<int:user_id>") == "GET /users/<int:user_id>"
    assert _http.server_span_name("POST", None) == "POST"
    assert _http.server_span_name("_OTHER", "/x") == "HTTP /x"
    assert _http.client_span_name("_OTHER") == "HTTP"


@pytest.mark.parametrize(
    ("method", "expected"),
    [("GET", ("GET", None)), ("get", ("GET", "get")), ("FOO", ("_OTHER", "FOO"))],
)
def test_unknown_methods_are_other_with_the_original_kept(
    method: str, expected: tuple[str, str | None]
) -> None:
    assert _http.method_and_original(method) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:p@example.com/a?b=1", "https://REDACTED:REDACTED@example.com/a?b=1"),
        ("https://example.com/a?token=s3cr3t&x=1", "https://example.com/a?token=REDACTED&x=1"),
        ("http://h/p?sig=a&Signature=b#frag", "http://h/p?sig=REDACTED&Signature=REDACTED#frag"),
        ("http://h/p@q?password=1", "http://h/p@q?password=REDACTED"),
        ("http://h/p?tokens=1", "http://h/p?tokens=1"),
    ],
)
def test_urls_lose_credentials_and_sensitive_query_values(url: str, expected: str) -> None:
    assert _http.redact_url(url) == expected


def test_server_attributes_from_an_environ() -> None:
    environ = {
        "REQUEST_METHOD": "PATCH",
        "wsgi.url_scheme": "https",
        "SCRIPT_NAME": "/api",
        "PATH_INFO": "/caf\xc3\xa9 x",  # WSGI: UTF-8 bytes decoded as latin-1
        "QUERY_STRING": "api_key=k&q=1",
        "HTTP_HOST": "shop.example:8443",
        "REMOTE_ADDR": "10.0.0.2",
        "REMOTE_PORT": "5555",
        "HTTP_X_FORWARDED_FOR": "203.0.113.9, 10.0.0.1",
        "HTTP_USER_AGENT": "curl/8",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    assert _http.server_environ_attributes(environ) == {
        "http.request.method": "PATCH",
        "url.scheme": "https",
        "url.path": "/api/caf%C3%A9%20x",
        "url.query": "api_key=REDACTED&q=1",
        "server.address": "shop.example",
        "server.port": 8443,
        "client.address": "203.0.113.9",
        "network.peer.address": "10.0.0.2",
        "network.peer.port": 5555,
        "user_agent.original": "curl/8",
        "network.protocol.version": "1.1",
    }


def test_server_address_falls_back_to_the_server_name_and_ipv6_hosts_parse() -> None:
    base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}
    assert (
        _http.server_environ_attributes({**base, "HTTP_HOST": "[::1]:8080"})["server.address"]
        == "::1"
    )
    attributes = _http.server_environ_attributes(
        {**base, "SERVER_NAME": "internal", "SERVER_PORT": "81"}
    )
    assert (attributes["server.address"], attributes["server.port"]) == ("internal", 81)
    assert _http.server_environ_attributes({**base, "HTTP_HOST": "h"})["server.port"] == 80


def test_a_host_seen_before_is_split_the_same_whatever_came_between() -> None:
    """Hosts are remembered once split: the default port still follows each request's scheme,
    and hosts past the remembered ones (or too long to remember) are split all the same."""
    base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}

    def host_and_port(host: str, scheme: str = "http") -> tuple[object, object]:
        environ = {**base, "HTTP_HOST": host, "wsgi.url_scheme": scheme}
        attributes = _http.server_environ_attributes(environ)
        return attributes["server.address"], attributes.get("server.port")

    assert host_and_port("shop.example") == ("shop.example", 80)
    assert host_and_port("shop.example", "https") == ("shop.example", 443)
    assert host_and_port("shop.example:8443", "https") == ("shop.example", 8443)
    for index in range(600):  # more than are remembered
        assert host_and_port(f"h{index}.example:{1000 + index}") == (
            f"h{index}.example",
            1000 + index,
        )
    assert host_and_port("shop.example", "https") == ("shop.example", 443)
    long_name = "a" * 300 + ".example"
    assert host_and_port(f"{long_name}:81") == (long_name, 81)
    assert host_and_port(f"{long_name}:81") == (long_name, 81)
    assert host_and_port("edge.example, inner:8080", "https") == ("edge.example", 443)


def test_client_attributes() -> None:
    assert _http.client_request_attributes("get", "https://a:b@api.example/v1?token=t") == {
        "http.request.method": "GET",
        "http.request.method_original": "get",
        "url.full": "https://REDACTED:REDACTED@api.example/v1?token=REDACTED",
        "server.address": "api.example",
        "server.port": 443,
    }


@pytest.mark.parametrize(
    ("url", "address", "port"),
    [
        ("http://127.0.0.1:8000/users/42", "127.0.0.1", 8000),
        ("HTTPS://Example.com#top", "Example.com", 443),
        ("http://[::1]:8080?next=/a/b", "::1", 8080),
        ("https://user@host.example:9443/x", "host.example", 9443),
        ("http://host.example?x=1:2", "host.example", 80),
        ("https://host.example:8443/next://other.example:1/", "host.example", 8443),
        ("http://a.example#b/c?d", "a.example", 80),
        ("svc+tcp://h.example:7/x", "h.example", 7),
    ],
)
def test_client_server_address_and_port(url: str, address: str, port: int) -> None:
    """The authority ends at the first ``/``, ``?`` or ``#``; the userinfo is never the host.
    Asked twice (the second answer comes from the per-origin cache) and after the cache has
    been filled and emptied by many other origins, the answer is the same."""
    expected = {"server.address": address, "server.port": port}
    for _ in range(2):
        attributes = _http.client_request_attributes("GET", url)
        assert {key: attributes.get(key) for key in expected} == expected
    for index in range(300):
        other = _http.client_request_attributes("GET", f"http://h{index}.example:{index + 1}/")
        assert (other["server.address"], other["server.port"]) == (f"h{index}.example", index + 1)
    attributes = _http.client_request_attributes("GET", url)
    assert {key: attributes.get(key) for key in expected} == expected
    assert not any("user" in origin for origin in _http._origins)


def test_status_rules_server_4xx_unset_client_4xx_error() -> None:
    recorder = SpanRecorder()
    server = recorder.tracer.start_span("s")
    _http.server_status_attributes(server, 404)
    server.end()
    client = recorder.tracer.start_span("c")
    _http.client_response(client, 404)
    client.end()
    failed = recorder.tracer.start_span("f")
    _http.server_status_attributes(failed, 503)
    failed.end()
    s, c, f = recorder.spans
    assert s.status.is_unset and "error.type" not in s.attributes
    assert not c.status.is_ok and c.status.status_code.name == "ERROR"
    assert c.attributes["error.type"] == "404"
    assert f.status.status_code.name == "ERROR" and f.attributes["error.type"] == "503"


def test_settings_from_the_configuration() -> None:
    config = config_for(
        plugin,
        {
            "OTEL_PYTHON_EXCLUDED_URLS": "healthz",
            "OTEL_PYTHON_FLASK_EXCLUDED_URLS": "/internal/.*,ping$",
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-request-id,Cookie,x-t.*",
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": "x-token",
        },
    )
    flask = _http.HttpSettings.from_config(config, "flask", server=True)
    django = _http.HttpSettings.from_config(config, "django", server=True)
    assert flask.is_excluded("http://h/internal/x") and flask.is_excluded("http://h/ping")
    assert not flask.is_excluded("http://h/healthz")  # the framework's variable wins
    assert django.is_excluded("http://h/healthz")
    assert flask.request_headers is not None
    captured = flask.captured(
        "http.request.header.",
        flask.request_headers,
        [("X-Request-Id", "r1"), ("Cookie", "sid=1"), ("x-token", "t"), ("Other", "o")],
    )
    assert captured == {
        "http.request.header.x-request-id": ["r1"],
        "http.request.header.cookie": ["[REDACTED]"],
        "http.request.header.x-token": ["[REDACTED]"],
    }
    assert flask.response_headers is None  # nothing configured: nothing to do per request


def test_sensitive_headers_are_recorded_only_when_opted_in() -> None:
    config = config_for(
        plugin,
        {
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": "authorization",
            "TELEMETRY_RUN_HTTP_CAPTURE_SENSITIVE_HEADERS": "true",
        },
    )
    settings = _http.HttpSettings.from_config(config, "requests", server=False)
    assert settings.request_headers is not None
    assert settings.captured("h.", settings.request_headers, [("Authorization", "Bearer x")]) == {
        "h.authorization": ["Bearer x"]
    }


def test_a_bad_pattern_is_one_warning_then_the_default() -> None:
    with pytest.raises(InvalidValue, match="not a regular expression"):
        _http.parse_url_patterns("ok,(unclosed")
    warnings: list[str] = []
    config = Config.from_env(
        {"OTEL_PYTHON_EXCLUDED_URLS": "(unclosed"}, plugin.VARIABLES, warn=warnings.append
    )
    assert config["OTEL_PYTHON_EXCLUDED_URLS"] == ()
    assert len(warnings) == 1 and "OTEL_PYTHON_EXCLUDED_URLS='(unclosed'" in warnings[0]


def test_excluded_patterns_ignore_the_query_unless_they_name_it() -> None:
    config = config_for(plugin, {"OTEL_PYTHON_EXCLUDED_URLS": r"/health$,/api\?internal=1"})
    settings = _http.HttpSettings.from_config(config, "flask", server=True)
    assert settings.is_excluded("http://h/health")
    assert settings.is_excluded("http://h/health?verbose=1")  # the path is what counts
    assert not settings.is_excluded("http://h/login?next=/health")  # a query cannot opt out
    assert not settings.is_excluded("http://h/login#/health")
    assert settings.is_excluded("http://h/api?internal=1")  # \? names the query: full URL
    assert not settings.is_excluded("http://h/api")
    none = _http.HttpSettings.from_config(config_for(plugin, {}), "flask", server=True)
    assert not none.excludes() and settings.excludes()


class _Opaque:
    """What a middleware may store in the environ: an object whose str() fails."""

    def __str__(self) -> str:
        raise RuntimeError("not a header")


def test_objects_in_the_environ_are_neither_headers_nor_errors() -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/p",
        "QUERY_STRING": _Opaque(),
        "HTTP_HOST": _Opaque(),
        "HTTP_X_USER": _Opaque(),
        "HTTP_USER_AGENT": b"bytes",
        "HTTP_X_REQUEST_ID": "r1",
        "SERVER_NAME": "srv",
        "SERVER_PORT": 8080,
        "REMOTE_ADDR": "10.0.0.2",
        "REMOTE_PORT": 5555,  # Django's ASGI META holds an int
        ("not", "a", "name"): "x",
        "CONTENT_TYPE": _Opaque(),
    }
    assert _http.environ_headers(environ) == [("X-REQUEST-ID", "r1")]
    attributes = _http.server_environ_attributes(environ)
    assert "url.query" not in attributes and "user_agent.original" not in attributes
    assert attributes["server.address"] == "srv" and attributes["server.port"] == 8080
    assert attributes["network.peer.port"] == 5555
    assert _http.environ_url(environ) == "http://srv/p"


def test_the_configured_query_keys_reach_every_scrub() -> None:
    from telemetry_run.sdk import _redaction

    config = config_for(plugin, {"TELEMETRY_RUN_HTTP_SENSITIVE_QUERY_KEYS": "Session,-key"})
    try:
        plugin.telemetry_run_configure(config, None)  # type: ignore[arg-type]
        assert _http.redact_url("https://h/?session=s&key=k") == "https://h/?session=REDACTED&key=k"
        assert _http.redact_query("token=t") == "token=REDACTED"  # the defaults stay
    finally:
        _redaction.configure_query_keys(_redaction.DEFAULT_SENSITIVE_QUERY_KEYS)


def test_urls_in_captured_headers_are_scrubbed_unless_sensitive_headers_are_opted_in() -> None:
    headers = [("Referer", "https://u:pw@app.example/cb?code=1&access_token=s3cr3t")]
    for opted_in, expected in (
        ("false", "https://REDACTED:REDACTED@app.example/cb?code=1&access_token=REDACTED"),
        ("true", headers[0][1]),
    ):
        config = config_for(
            plugin,
            {
                "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "referer",
                "TELEMETRY_RUN_HTTP_CAPTURE_SENSITIVE_HEADERS": opted_in,
            },
        )
        settings = _http.HttpSettings.from_config(config, "flask", server=True)
        assert settings.request_headers is not None
        assert settings.captured("h.", settings.request_headers, headers) == {
            "h.referer": [expected]
        }
