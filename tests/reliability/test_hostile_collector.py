"""Collectors that answer wrongly: garbage bytes, a huge or mistyped response, a slow trickle,
a certificate for another host. Every export is bounded by its deadline, reported, and never
raises into the caller."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from telemetry_run.sdk.exporters.otlp import OTLPGrpcSpanExporter, OTLPHttpSpanExporter
from telemetry_run.testing.otlp import OTLPReceiver
from tests.unit.sdk.otlp_helpers import (
    FAST,
    Certificates,
    diagnostics_with_logs,
    make_certificates,
    make_spans,
)

DEADLINE = 2.0
Reply = Callable[[socket.socket], None]


def _http(status: str, body: bytes, content_type: str = "application/x-protobuf") -> Reply:
    def reply(conn: socket.socket) -> None:
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        conn.sendall(head.encode() + body)

    return reply


def _garbage(conn: socket.socket) -> None:
    conn.sendall(b"\x00\xff\xfe not a protocol at all \r\n\r\n" * 64)


def _trickle(conn: socket.socket) -> None:
    """A status line, then header bytes for ever, a few a second: only the deadline ends it."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while True:  # until the exporter hangs up (OSError)
        conn.sendall(b"X-Wait: a\r\n")
        time.sleep(0.25)


@pytest.fixture
def hostile() -> Iterator[Callable[[Reply], int]]:
    """A TCP server on 127.0.0.1 that reads a little of each request and sends ``reply``."""
    sockets: list[socket.socket] = []
    threads: list[threading.Thread] = []
    stop = threading.Event()

    def start(reply: Reply) -> int:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(0.2)
        sockets.append(server)

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except (TimeoutError, OSError):
                    continue
                with conn:
                    conn.settimeout(1.0)
                    try:
                        conn.recv(65536)
                        reply(conn)
                    except OSError:
                        pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return int(server.getsockname()[1])

    yield start
    stop.set()
    for thread in threads:
        thread.join(5)
    for server in sockets:
        server.close()


def _bounded_export(exporter: OTLPHttpSpanExporter | OTLPGrpcSpanExporter) -> tuple[bool, str]:
    """One export with a deadline: its success and error. An export that ignored the deadline
    would hang on the endless trickle, and the test's timeout would fail it."""
    try:
        result = exporter.export(make_spans(2), deadline=time.monotonic() + DEADLINE)
    finally:
        exporter.shutdown(deadline=time.monotonic() + 1)
    return result.success, result.error or ""


@pytest.mark.parametrize(
    ("name", "reply", "accepted"),
    [
        ("garbage bytes", _garbage, False),
        ("200 with a 20 MB body", _http("200 OK", b"\x0a" * (20 * 1024 * 1024)), None),
        ("200 with a garbage protobuf", _http("200 OK", b"\xff\xff\xff\xff"), None),
        ("200 as text/html", _http("200 OK", b"<html>hello</html>", "text/html"), True),
        ("500 as text/html", _http("500 Oops", b"<html>no</html>", "text/html"), False),
        ("a trickle slower than the deadline", _trickle, False),
    ],
)
def test_the_http_exporter_stays_bounded(
    hostile: Callable[[Reply], int], name: str, reply: Reply, accepted: bool | None
) -> None:
    diagnostics, logs = diagnostics_with_logs()
    port = hostile(reply)
    exporter = OTLPHttpSpanExporter(
        f"http://127.0.0.1:{port}/v1/traces", diagnostics=diagnostics, retry_policy=FAST
    )
    success, error = _bounded_export(exporter)
    if reply is _trickle:
        assert "deadline" in error, error  # the deadline ended it, the collector never does
    if accepted is not None:
        assert success is accepted, name
    if not success:
        assert logs.messages, f"{name}: a failed export must be reported"
        assert all(str(port) in message for message in logs.messages), logs.messages


def test_the_grpc_exporter_against_garbage_bytes_stays_bounded(
    hostile: Callable[[Reply], int],
) -> None:
    diagnostics, logs = diagnostics_with_logs()
    port = hostile(_garbage)
    exporter = OTLPGrpcSpanExporter(
        f"http://127.0.0.1:{port}", diagnostics=diagnostics, retry_policy=FAST
    )
    success, error = _bounded_export(exporter)
    assert not success and error
    assert logs.messages


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("certs")))


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_certificate_for_another_host_is_never_accepted(
    certificates: Certificates, transport: str
) -> None:
    diagnostics, logs = diagnostics_with_logs()
    with OTLPReceiver(tls=certificates.wrong_host) as receiver:
        if transport == "grpc":
            exporter: OTLPHttpSpanExporter | OTLPGrpcSpanExporter = OTLPGrpcSpanExporter(
                receiver.grpc_endpoint,
                certificate_file=certificates.ca_file,
                diagnostics=diagnostics,
                retry_policy=FAST,
            )
        else:
            exporter = OTLPHttpSpanExporter(
                receiver.http_endpoint,
                certificate_file=certificates.ca_file,
                diagnostics=diagnostics,
                retry_policy=FAST,
            )
        success, error = _bounded_export(exporter)
        assert not success and error
        assert receiver.spans() == []  # nothing was delivered to the impostor
    assert logs.messages
