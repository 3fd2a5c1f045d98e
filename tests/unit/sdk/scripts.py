"""Running a test script in its own interpreter, forked children included, with a hard bound."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import pytest

__all__ = ["run_script"]


def run_script(script: str, *args: str, timeout: float) -> tuple[str, str, int]:
    """Run ``script`` in a new session; on timeout kill the whole group, forked children too."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # also a forked child left behind
    if timed_out:
        _, err = proc.communicate()
        pytest.fail(f"no exit within {timeout}s: the script or its forked child deadlocked\n{err}")
    return out, err, proc.returncode
