"""What the HTTP client instrumentor tests (requests, urllib3, httpx, aiohttp) share: a real
HTTP/1.1 server on 127.0.0.1 that records the headers it gets, the ``instrument`` fixture's
body, and the traceparent a span should have sent."""

from __future__ import annotations

import contextlib
import http.server
from collections.abc import Callable, Iterator
from typing import Any

from telemetry_run.instrumentors import plugin
from telemetry_run.testing import SpanRecorder, config_for
from tests.integration.downstream import QuietHandler, serving

#: A test's own paths: answers the request and returns True, or returns False to leave it to
#: the usual answers. Given the handler and the headers of every request so far.
Special = Callable[[http.server.BaseHTTPRequestHandler, list[dict[str, str]]], bool]


def answer(handler: http.server.BaseHTTPRequestHandler, code: int) -> None:
    """The usual answer: ``code``, a marker header, body ``ok``."""
    handler.send_response(code)
    handler.send_header("Content-Length", "2")
    handler.send_header("X-Served-By", "test")
    handler.end_headers()
    handler.wfile.write(b"ok")


@contextlib.contextmanager
def recording_server(
    special: Special | None = None,
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Its base URL and the headers of each request (names lower-cased). ``/redirect`` is a 302
    to ``/ok``, ``.../status/N`` answers N, anything else 200."""
    seen: list[dict[str, str]] = []

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            if special is not None and special(self, seen):
                return
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", "/ok")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer(self, int(self.path.split("/status/")[1]) if "/status/" in self.path else 200)

    with serving(Handler) as url:
        yield url, seen


def instrumenting(
    recorder: SpanRecorder, make: Callable[[], Any]
) -> Iterator[Callable[..., SpanRecorder]]:
    """The ``instrument`` fixture's body: ``instrument(*also, **environ)`` instruments a new
    ``make()`` (and the instrumentors in ``also``) with ``environ`` as its configuration; all
    are uninstrumented, last first, when the test ends."""
    made: list[Any] = []

    def instrument(*also: Any, **environ: str) -> SpanRecorder:
        for instrumentor in (make(), *also):
            instrumentor.instrument(recorder.provider, config_for(plugin, environ))
            made.append(instrumentor)
        return recorder

    yield instrument
    for instrumentor in reversed(made):
        instrumentor.uninstrument()


def sent_traceparent(span: Any) -> str:
    """The traceparent ``span`` propagates: flags 03, sampled and a trace id we generated
    (random-trace-id)."""
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-03"
