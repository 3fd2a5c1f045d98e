"""A throwaway PostgreSQL for the database tests: ``initdb`` in a temporary folder, a free port.

Debian's ``postgresql`` package puts its programs in ``/usr/lib/postgresql/<version>/bin``;
``initdb`` refuses to run as root, so under root (CI containers) the cluster belongs to the
``postgres`` user and the server runs as it. The server is stopped by its PID (a fast
shutdown, then a kill after a bounded wait), and its folder removed. Without PostgreSQL the
tests skip with the reason; in CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telemetry_run.testing.otlp import free_port
from tests.server_process import in_ci, stop, wait_until_ready

__all__ = ["PostgresServer", "installed", "postgres", "running_postgres"]

_START_BOUND = 60.0  # an outer bound that only catches a server that never comes up


class PostgresServer:
    """A running cluster: where to reach it, and a ``dsn`` for its ``postgres`` database."""

    def __init__(self, host: str, port: int, dbname: str, user: str) -> None:
        self.host = host
        self.port = port
        self.dbname = dbname
        self.user = user

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} dbname={self.dbname} user={self.user}"

    @property
    def url(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def installed() -> bool:
    """Whether PostgreSQL's programs are here (in PATH or in Debian's folder)."""
    return all(_binary(name) for name in ("initdb", "postgres", "pg_isready"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 (user and database ``postgres``), for the session."""
    if not installed():
        if in_ci():
            pytest.fail("CI must run the PostgreSQL tests: initdb, postgres, pg_isready missing")
        pytest.skip(
            "PostgreSQL's initdb, postgres, pg_isready are not installed (Debian: postgresql)"
        )
    with running_postgres() as server:
        yield server


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a throwaway cluster, yield it, stop it by PID and remove it (``installed()``)."""
    initdb, server, isready = _binary("initdb"), _binary("postgres"), _binary("pg_isready")
    if initdb is None or server is None or isready is None:
        raise RuntimeError("PostgreSQL's initdb, postgres, pg_isready are not installed")
    as_user: dict[str, Any] = {}
    folder = Path(tempfile.mkdtemp(prefix="telemetry-run-pg-"))
    if os.geteuid() == 0:
        as_user = {"user": "postgres", "group": "postgres"}
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                initdb,
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=_START_BOUND,
            **as_user,
        )
        port = free_port()
        with (folder / "server.log").open("wb") as log:  # the server keeps its own copy
            process = subprocess.Popen(
                [
                    server,
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(folder),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                **as_user,
            )
        ready = [isready, "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        wait_until_ready(
            process,
            lambda: subprocess.run(ready, check=False, timeout=_START_BOUND).returncode == 0,
            f"PostgreSQL on {port}",
            folder / "server.log",
            _START_BOUND,
        )
        yield PostgresServer("127.0.0.1", port, "postgres", "postgres")
    finally:
        if process is not None:
            stop(process, signal.SIGINT, 30)  # SIGINT: a fast shutdown
        shutil.rmtree(folder, ignore_errors=True)
