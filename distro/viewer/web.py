"""The viewer's web page and the JSON API it reads, on ``http.server`` in a thread.

Routes: ``/`` (the page; ``?trace=ID`` opens a trace, ``&span=ID`` a span's details),
``/static/NAME`` (the page's files, shipped in the package: no build step, no CDN),
``/api/traces?service=S&errors=1`` (the trace list), ``/api/traces/ID`` (one trace) and
``/api/services``. Span data is attacker-controlled: the page only ever sets it as text, and
every answer forbids inline scripts and other origins (Content-Security-Policy). Requests whose
``Host`` is not a name of this server are refused, so a web page elsewhere cannot read the
traces through DNS rebinding.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from telemetry_run.viewer.receiver import host_port
from telemetry_run.viewer.store import TraceStore

__all__ = ["ViewerWebServer"]

_STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "viewer.js": "text/javascript; charset=utf-8",
    "viewer.css": "text/css; charset=utf-8",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class ViewerWebServer:
    """The page on ``host:port`` (0: a free port; ``port`` holds the real one after start)."""

    def __init__(self, store: TraceStore, host: str, port: int) -> None:
        self.store = store
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        shown = "::1" if shown == "::" else shown
        return f"http://{host_port(shown, self.port)}/"

    def start(self) -> None:
        try:
            server = _Server((self.host, self.port), _Handler)
        except OSError as exc:
            where = host_port(self.host, self.port)
            raise OSError(f"cannot serve the viewer's page on {where}: {exc.strerror}") from exc
        server.store = self.store
        server.allowed_hosts = _LOCAL_NAMES | {self.host.lower()}
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},  # stop() waits at most this long
            name="viewer-web",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    store: TraceStore
    allowed_hosts: frozenset[str]

    def server_bind(self) -> None:
        if ":" in self.server_address[0]:
            import socket

            self.address_family = socket.AF_INET6
            self.socket = socket.socket(self.address_family, self.socket_type)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a browser that went away mid-answer


def _host_name(header: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8080`` -> ``::1``), lower-cased."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the terminal shows the URL and the app's output, not every page load

    def do_GET(self) -> None:
        host = _host_name(self.headers.get("Host") or "")
        if host not in self.server.allowed_hosts and self.server.allowed_hosts.isdisjoint(
            {"0.0.0.0", "::", ""}
        ):
            self._reply(403, "text/plain; charset=utf-8", b"unknown Host for this viewer")
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        store = self.server.store
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path.removeprefix("/static/"))
        elif path == "/api/traces":
            service = (query.get("service") or [""])[0] or None
            errors = (query.get("errors") or [""])[0] in ("1", "true")
            self._json({"traces": store.summaries(service, errors), "stats": store.stats()})
        elif path.startswith("/api/traces/"):
            trace_id = path.removeprefix("/api/traces/")
            trace = store.trace(trace_id) if _TRACE_ID.fullmatch(trace_id) else None
            if trace is None:
                self._json({"error": "no such trace (unknown, or evicted)"}, 404)
            else:
                self._json(trace)
        elif path == "/api/services":
            self._json({"services": store.services()})
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found")

    def _static(self, name: str) -> None:
        content_type = _STATIC_TYPES.get(name)
        if content_type is None:  # only the files we ship: no path from the URL is opened
            self._reply(404, "text/plain; charset=utf-8", b"not found")
            return
        body = resources.files("telemetry_run.viewer").joinpath("static", name).read_bytes()
        self._reply(200, content_type, body)

    def _json(self, document: Any, status: int = 200) -> None:
        body = json.dumps(document, ensure_ascii=True, allow_nan=False, default=str).encode()
        self._reply(status, "application/json", body)

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
