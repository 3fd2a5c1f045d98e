"""What the real servers under the tests (redis-server, prometheus, PostgreSQL) share: their
binary or a skip naming the package (a failure in CI, which installs them), a free 127.0.0.1
port, a bounded wait until the server answers, and a stop by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["in_ci", "installed_or_skip", "stop", "wait_until_ready"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def installed_or_skip(found: str | None, missing: str, tests: str, package: str) -> str:
    """``found`` (a binary's path); else skip naming ``missing`` and the Debian ``package``, or
    in CI fail: there the ``tests`` must run."""
    if found is not None:
        return found
    if in_ci():
        pytest.fail(f"CI must run the {tests}: no {missing} on PATH")
    pytest.skip(f"{missing} is not on PATH (apt-get install {package})")


def wait_until_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    what: str,
    log: Path,
    bound: float,
) -> None:
    """Poll ``ready()`` until it holds; ``RuntimeError`` with the server's log if the process
    exits first or ``bound`` seconds pass (a bound that only catches a server that hangs)."""
    deadline = time.monotonic() + bound
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{what} did not start:\n{text[-2000:]}")
        time.sleep(0.05)


def stop(
    process: subprocess.Popen[bytes], signum: int = signal.SIGTERM, bound: float = 10.0
) -> None:
    """Stop the server by its PID with ``signum``, killed if still there after ``bound`` s."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signum)
    try:
        process.wait(bound)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
