"""What every HTTP client instrumentor (requests, urllib3, httpx, aiohttp) does alike, each case
run once per client against a real HTTP server on 127.0.0.1: error statuses, excluded URLs and
suppression, captured headers. What only one client does stays in its own test module.

A client's matrix session (``TELEMETRY_RUN_MATRIX_FRAMEWORK`` set by nox) runs that client's
cases alone, and fails if its library is missing; elsewhere every installed client runs.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from telemetry_run.sdk.context import suppress_instrumentation
from telemetry_run.sdk.trace.api import StatusCode
from telemetry_run.testing import SpanRecorder
from tests.unit.instrumentors.http_clients import instrumenting, recording_server


def _requests_get(requests: Any, url: str, headers: dict[str, str]) -> int:
    return int(requests.get(url, headers=headers, timeout=10).status_code)


def _httpx_get(httpx: Any, url: str, headers: dict[str, str]) -> int:
    return int(httpx.get(url, headers=headers, timeout=10).status_code)


def _urllib3_get(urllib3: Any, url: str, headers: dict[str, str]) -> int:
    with urllib3.PoolManager() as manager:
        return int(manager.request("GET", url, headers=headers).status)


def _aiohttp_get(aiohttp: Any, url: str, headers: dict[str, str]) -> int:
    async def main() -> int:
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as got:
            await got.read()
            return int(got.status)

    return asyncio.run(main())


@dataclass(frozen=True)
class Client:
    """One HTTP client library: its instrumentor and a plain GET returning the status."""

    name: str  # the instrumentor's name, as in OTEL_PYTHON_<NAME>_EXCLUDED_URLS
    library: str
    instrumentor: str  # "module:class"
    get: Callable[[Any, str, dict[str, str]], int]


CLIENTS = [
    Client("requests", "requests", "requests:RequestsInstrumentor", _requests_get),
    Client("urllib3", "urllib3", "urllib3:Urllib3Instrumentor", _urllib3_get),
    Client("httpx", "httpx", "httpx:HttpxInstrumentor", _httpx_get),
    Client("aiohttp_client", "aiohttp", "aiohttp_client:AiohttpClientInstrumentor", _aiohttp_get),
]


@dataclass
class Instrumented:
    """A client under test: ``instrument(**environ)`` turns its instrumentor on."""

    client: Client
    library: Any
    instrument: Callable[..., SpanRecorder]

    def get(self, url: str, **headers: str) -> int:
        return self.client.get(self.library, url, headers)


#: The client whose matrix session this is (its library installed at the version under test).
SESSION: str | None = os.environ.get("TELEMETRY_RUN_MATRIX_FRAMEWORK")


@pytest.fixture(
    params=[client for client in CLIENTS if SESSION is None or client.name == SESSION],
    ids=lambda client: client.name,
)
def client(request: pytest.FixtureRequest, span_recorder: SpanRecorder) -> Iterator[Instrumented]:
    spec: Client = request.param
    if SESSION is None:
        library = pytest.importorskip(
            spec.library, reason=f"{spec.library} is not installed (its matrix session runs it)"
        )
    else:  # the session of this very client: its library must be there
        library = importlib.import_module(spec.library)
    module, name = spec.instrumentor.split(":")
    instrumentor = getattr(importlib.import_module(f"telemetry_run.instrumentors.{module}"), name)
    instrumented = instrumenting(span_recorder, instrumentor)
    yield Instrumented(spec, library, next(instrumented))
    next(instrumented, None)  # uninstruments


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with recording_server() as served:
        yield served


@pytest.mark.parametrize("code", [404, 503])
def test_error_statuses_are_errors_on_the_client(
    client: Instrumented, server: Any, code: int
) -> None:
    recorder = client.instrument()
    base, _ = server
    assert client.get(f"{base}/status/{code}") == code
    span = recorder.one("GET")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == str(code)
    assert span.attributes["http.response.status_code"] == code


def test_excluded_urls_and_suppression_make_no_span(client: Instrumented, server: Any) -> None:
    variable = f"OTEL_PYTHON_{client.client.name.upper()}_EXCLUDED_URLS"
    recorder = client.instrument(**{variable: "/status/"})
    base, seen = server
    assert client.get(f"{base}/status/200") == 200
    with suppress_instrumentation():
        assert client.get(f"{base}/ok") == 200
    assert recorder.spans == ()
    assert all("traceparent" not in headers for headers in seen)
    assert client.get(f"{base}/ok") == 200  # neither excluded nor suppressed: traced
    assert len(recorder.spans) == 1 and "traceparent" in seen[-1]


def test_allow_listed_headers_are_captured(client: Instrumented, server: Any) -> None:
    recorder = client.instrument(
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST="x-mine",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE="x-served-by",
    )
    base, _ = server
    client.get(f"{base}/ok", **{"X-Mine": "m"})
    attributes = recorder.one("GET").attributes
    assert attributes["http.request.header.x-mine"] == ("m",)
    assert attributes["http.response.header.x-served-by"] == ("test",)
