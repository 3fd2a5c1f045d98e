"""A real ``redis-server`` (Debian's package) on a free 127.0.0.1 port, stopped by its PID.

Used by the redis instrumentor's unit and integration tests. Where the binary is missing the
test skips naming it; in CI (``CI=true``, ``.ci/run`` installs it) it fails instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["RedisServer", "redis_server_binary", "running_redis_server"]


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def redis_server_binary() -> str:
    """The ``redis-server`` on PATH; skips (fails in CI) without one."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail("CI must run the redis tests: no redis-server binary on PATH")
    pytest.skip("the redis-server binary is not on PATH (apt-get install redis-server)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def running_redis_server(folder: Path) -> Iterator[RedisServer]:
    """A throwaway server (no persistence, its files in ``folder``) until the block ends."""
    binary = redis_server_binary()
    port = _free_port()
    log = folder / "redis-server.log"
    process = subprocess.Popen(
        [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(folder),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(log),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30  # an outer bound that only catches a server that hangs
        while not _answers_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text() if log.exists() else ""
                raise RuntimeError(f"redis-server did not start on port {port}:\n{text}")
            time.sleep(0.05)
        yield RedisServer("127.0.0.1", port, process.pid)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
