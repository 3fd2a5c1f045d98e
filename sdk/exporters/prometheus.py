"""A Prometheus pull exporter: a metric reader that answers scrapes with the text format, or
OpenMetrics when the scraper asks for it (Prometheus does).

Prometheus pulls, so this is a reader, not an exporter the periodic reader drives: each
``GET`` on its port collects the provider's streams (always cumulative: Prometheus computes
rates itself and takes a counter going down for a restart) and answers with
``prometheus_openmetrics.render`` or ``prometheus_text.render`` as its ``Accept`` header
says. The server is the standard library's ``ThreadingHTTPServer`` on a daemon thread,
started when the reader is registered with its provider (so a process that never builds the
metrics pipeline opens no port) and closed at shutdown.

Ports: the configured port is tried first; when it is taken (a second process on the host, or a
forked worker whose parent serves it), the next ones are tried, ``PORT_ATTEMPTS`` in all, and
the port served is said once. A forked worker (gunicorn, uWSGI) closes the parent's socket in
its copy and binds its own port the same way, so each worker is a target of its own and its
series carry Prometheus's ``instance`` label: never the parent's counts twice, never one
worker's counts under another's name. A collection that raises answers the scrape with a 500
and is reported once through the diagnostics; the application never sees it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk._log import logger
from telemetry_run.sdk.metrics.reader import MetricReader

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from telemetry_run.sdk.diagnostics import Diagnostics
    from telemetry_run.sdk.metrics.provider import MeterProvider

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "PORT_ATTEMPTS", "PrometheusMetricReader"]

#: The specification's defaults: OTEL_EXPORTER_PROMETHEUS_HOST and OTEL_EXPORTER_PROMETHEUS_PORT.
DEFAULT_HOST: Final = "localhost"
DEFAULT_PORT: Final = 9464
#: Ports tried from the configured one when it is taken (one per worker of a large server).
PORT_ATTEMPTS: Final = 64
#: Seconds a scrape's collection may take, callbacks included.
SCRAPE_TIMEOUT: Final = 10.0


class PrometheusMetricReader(MetricReader):
    """Serves the provider's metrics to Prometheus on ``host:port`` (or the next free port)."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        diagnostics: Diagnostics | None = None,
    ) -> None:
        super().__init__(temporality_preference="cumulative", diagnostics=diagnostics)
        self.host = host
        self.configured_port = port
        #: The port served now (None until the server started, or when none could be bound).
        self.port: int | None = None
        self._server: ThreadingHTTPServer | None = None

    def _register(self, provider: MeterProvider, index: int) -> None:
        super()._register(provider, index)
        self._start_server()

    def scrape(self, accept: str | None = None) -> tuple[int, str, bytes]:
        """One scrape's answer: status, content type and body (a 500 when collection fails);
        OpenMetrics when the scraper's ``Accept`` asks for it, the 0.0.4 text otherwise."""
        from telemetry_run.sdk.exporters import prometheus_openmetrics, prometheus_text

        openmetrics = prometheus_openmetrics.wants_openmetrics(accept)
        exposition = prometheus_openmetrics if openmetrics else prometheus_text
        try:
            body = exposition.render(self.collect(SCRAPE_TIMEOUT)).encode()
        except Exception as exc:  # noqa: BLE001  # reported; the scraper gets a 500
            self._diagnostics.internal_error("Prometheus exporter: a scrape", exc)
            return 500, "text/plain; charset=utf-8", b"collection failed\n"
        return 200, exposition.CONTENT_TYPE, body

    def _start_server(self) -> None:
        from http.server import ThreadingHTTPServer

        handler = _handler_for(self)
        for offset in range(PORT_ATTEMPTS):
            port = self.configured_port + offset
            if port > 65535:
                break
            try:
                server = ThreadingHTTPServer((self.host, port), handler)
            except OSError:
                continue
            server.daemon_threads = True
            self._server, self.port = server, port
            thread = threading.Thread(
                target=server.serve_forever, name="telemetry-run-prometheus", daemon=True
            )
            thread.start()
            if offset:
                logger.info(
                    "OTEL_EXPORTER_PROMETHEUS_PORT: %d is taken; metrics are served on %s:%d",
                    self.configured_port,
                    self.host,
                    port,
                )
            return
        logger.warning(
            "OTEL_EXPORTER_PROMETHEUS_PORT: no free port from %d (%d tried) on %s; "
            "metrics are not served",
            self.configured_port,
            PORT_ATTEMPTS,
            self.host,
        )

    def shutdown(self, *, deadline: float) -> bool:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # returns once serve_forever has stopped (it polls every 0.5 s)
            server.server_close()
        return super().shutdown(deadline=deadline)

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        server, self._server = self._server, None
        self.port = None
        if server is not None:
            # The parent keeps serving on it: the child only closes its copy of the socket, and
            # binds its own from a thread of its own (no binding or logging in a fork handler).
            server.socket.close()
            with contextlib.suppress(RuntimeError):  # the interpreter is finalizing
                threading.Thread(
                    target=self._start_server, name="telemetry-run-prometheus-bind", daemon=True
                ).start()


def _handler_for(reader: PrometheusMetricReader) -> Any:
    from http.server import BaseHTTPRequestHandler

    class _Scrape(BaseHTTPRequestHandler):
        server_version = "telemetry-run"

        def do_GET(self) -> None:  # the name http.server calls
            status, content_type, body = reader.scrape(self.headers.get("Accept"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not the application's log

    return _Scrape
