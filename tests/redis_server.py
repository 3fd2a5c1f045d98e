"""A real ``redis-server`` (Debian's package) on a free 127.0.0.1 port, stopped by its PID.

Used by the redis instrumentor's unit and integration tests. Where the binary is missing the
test skips naming it; in CI (``CI=true``, ``.ci/run`` installs it) it fails instead.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from telemetry_run.testing.otlp import free_port
from tests.server_process import installed_or_skip, stop, wait_until_ready

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
    return installed_or_skip(
        shutil.which("redis-server"), "redis-server binary", "redis tests", "redis-server"
    )


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
    port = free_port()
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
        wait_until_ready(process, lambda: _answers_ping(port), f"redis-server on {port}", log, 30)
        yield RedisServer("127.0.0.1", port, process.pid)
    finally:
        stop(process)
