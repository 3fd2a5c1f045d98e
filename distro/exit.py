"""The exit hook: flush what is queued within one deadline, on exit and on SIGTERM.

``atexit`` covers a normal exit. For SIGTERM (a container stopping, a reloader replacing its
child) a handler is installed only where the handler is still the default: it flushes, restores
the default and re-sends the signal, so the process still dies by SIGTERM (return code -15, a
shell shows 143). An application that installs its own handler replaces ours and exits through
``atexit``. The whole flush is bounded by TELEMETRY_RUN_SHUTDOWN_TIMEOUT: a dead or hanging
collector never holds the process longer. What was not delivered (or was cut by the span
limits) is reported on one stderr line; with TELEMETRY_RUN_DEBUG the line is printed always.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from telemetry_run.sdk.diagnostics import Diagnostics
    from telemetry_run.sdk.trace.provider import TracerProvider

__all__ = ["ExitHook", "format_exit_line"]


def format_exit_line(counts: dict[str, int]) -> str:
    """The fixed-format report line (tests and log scrapers parse it).

    Spans first (each one produced is exported or dropped for one reason), then how many span
    sends were retried, then what the span limits cut from spans that were kept and how many
    invalid attribute values were refused.
    """
    return (
        f"telemetry-run: spans produced={counts['produced']} exported={counts['exported']} "
        f"dropped={counts['dropped']} (queue_full={counts['queue_full']}, "
        f"export_failed={counts['export_failed']}, rejected={counts['rejected']}, "
        f"shutdown={counts['shutdown']}) retried={counts['retried']} "
        f"over_limits=(attributes={counts['attributes_over_limit']}, "
        f"events={counts['events_over_limit']}, links={counts['links_over_limit']}) "
        f"invalid_attributes={counts['attributes_dropped']}"
    )


def _worth_a_line(counts: dict[str, int]) -> bool:
    """Something was not delivered, or cut or refused on the way."""
    return bool(
        counts["produced"] != counts["exported"]
        or counts["dropped"]
        or counts["attributes_dropped"]
        or counts["attributes_over_limit"]
        or counts["events_over_limit"]
        or counts["links_over_limit"]
    )


class ExitHook:
    """Flushes and shuts the provider down once per process, at exit or on SIGTERM."""

    def __init__(
        self,
        provider: TracerProvider,
        diagnostics: Diagnostics,
        timeout: float,
        err: TextIO | None = None,
        *,
        always_report: bool = False,
    ):
        self._provider = provider
        self._diagnostics = diagnostics
        self._timeout = timeout
        self._err = err
        self._always_report = always_report  # TELEMETRY_RUN_DEBUG: the line even when all is well
        self._lock = threading.Lock()
        self._done_in: int | None = None  # the pid that already flushed
        self.sigterm_installed = False

    def install(self) -> None:
        atexit.register(self.flush)
        try:
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, self._on_sigterm)
                self.sigterm_installed = True
        except ValueError:
            pass  # not the main thread (an embedded interpreter): atexit still covers exits

    def flush(self) -> None:
        """Shut the provider down within the timeout and report what was not delivered."""
        pid = os.getpid()
        with self._lock:
            if self._done_in == pid:
                return
            self._done_in = pid
        self._provider.shutdown(self._timeout)
        counts = self._diagnostics.snapshot()
        if self._always_report or _worth_a_line(counts):
            with contextlib.suppress(OSError, ValueError):  # stderr closed: nothing to tell
                print(format_exit_line(counts), file=self._err or sys.stderr, flush=True)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.flush()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
