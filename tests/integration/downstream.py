"""A plain HTTP server on a loopback port for an instrumented client under test to call: it
records the headers of every request it gets (what the client propagated) and answers as the
test says."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator

#: What the server answers to a request's path: status, extra headers, body.
Reply = tuple[int, dict[str, str], bytes]


def empty_ok(path: str) -> Reply:
    """200 with no body, whatever the path."""
    return 200, {}, b""


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that logs nothing (the test's output stays the test's)."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` on a free 127.0.0.1 port, served by a thread until the block ends; its base
    URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def downstream_server(
    reply: Callable[[str], Reply] = empty_ok,
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Its base URL and the list each GET's headers (names lower-cased) are appended to."""
    seen: list[dict[str, str]] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            status, headers, body = reply(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Handler) as url:
        yield url, seen
