"""Dev-server reloaders: on SIGTERM, let the serving child flush before the parent goes.

``flask run --reload`` (werkzeug's reloader) and Django's autoreloader run the server in a child
interpreter that the parent re-launches after each code change. Their parent handles SIGTERM
with ``sys.exit(0)``, which unwinds through ``subprocess.call``/``run`` and SIGKILLs the child:
the child's exit hook never runs and the spans of its last seconds are lost whenever only the
parent is told to stop (a container runtime, a process manager, ``kill PID``). uvicorn's
reloader already sends SIGTERM to its child and needs nothing. (Ctrl-C reaches both processes;
``subprocess`` then gives the child a quarter of a second before it kills it.)

While the parent waits in the reloader's restart loop, our SIGTERM handler forwards SIGTERM to
the running child (which flushes through its own exit hook and exits) and lets the loop return
the child's exit code, as the reloader's own handler would have ended the parent. A child that
is still alive after TELEMETRY_RUN_SHUTDOWN_TIMEOUT plus one second is SIGKILLed as before, and
a second SIGTERM runs the reloader's own handler at once. The parent itself makes no spans.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    import subprocess

    from telemetry_run.bootstrap import Bootstrapped

__all__ = ["forward_sigterm_to_children", "install"]

F = TypeVar("F", bound=Callable[..., Any])

#: Extra time the parent gives its child beyond the child's own exit bound.
GRACE: Final = 1.0

_WRAPPED: Final = "__telemetry_run_wrapped__"


def install(state: Bootstrapped) -> None:
    """Patch the reloaders when (if ever) the application imports them."""
    from telemetry_run._import_hooks import register_post_import_hook

    timeout = state.config.shutdown_timeout + GRACE
    for module, patch in (
        ("werkzeug._reloader", _patch_werkzeug),
        ("django.utils.autoreload", _patch_django),
    ):
        register_post_import_hook(functools.partial(_guarded, patch, timeout), module)


def _guarded(
    patch: Callable[[float, ModuleType], None], timeout: float, module: ModuleType
) -> None:
    try:
        patch(timeout, module)
    except Exception as exc:  # noqa: BLE001  # a reloader we do not know: left as it is
        from telemetry_run._servers import report

        report(f"reloader support for {module.__name__}", exc)


def _patch_werkzeug(timeout: float, module: ModuleType) -> None:
    loop = module.__dict__["ReloaderLoop"]
    loop.restart_with_reloader = _forwarding(loop.restart_with_reloader, timeout)


def _patch_django(timeout: float, module: ModuleType) -> None:
    restart = module.__dict__["restart_with_reloader"]
    module.__dict__["restart_with_reloader"] = _forwarding(restart, timeout)


def _forwarding(restart: F, timeout: float) -> F:
    if getattr(restart, _WRAPPED, None) is not None:
        return restart

    @functools.wraps(restart)
    def restart_with_reloader(*args: Any, **kwargs: Any) -> Any:
        with forward_sigterm_to_children(timeout):
            return restart(*args, **kwargs)

    setattr(restart_with_reloader, _WRAPPED, restart)
    return restart_with_reloader  # type: ignore[return-value]


class _Forwarder:
    """The SIGTERM handler while a reloader waits for its child."""

    def __init__(self, timeout: float, previous: Any) -> None:
        self.timeout = timeout
        self.previous = previous  # the reloader's handler: sys.exit(0)
        self.children: list[subprocess.Popen[Any]] = []
        self.terminating = False
        self._closed = threading.Event()

    def alive(self) -> list[subprocess.Popen[Any]]:
        # returncode only: poll() would contend with the main thread's wait for its lock.
        return [child for child in self.children if child.returncode is None]

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        children = self.alive()
        if self.terminating or not children:
            self._run_previous(signum, frame)  # a second SIGTERM, or between two children
            return
        self.terminating = True
        for child in children:
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGTERM)
        # The main thread keeps waiting for the child, whose exit code the loop then returns.
        deadline = time.monotonic() + self.timeout
        killer = threading.Thread(target=self._kill_at, args=(deadline, children), daemon=True)
        killer.start()

    def _kill_at(self, deadline: float, children: list[subprocess.Popen[Any]]) -> None:
        # The clock is read again after each wait: a wait that returns early kills no one early.
        while (remaining := deadline - time.monotonic()) > 0:
            if self._closed.wait(remaining):
                return
        for child in children:
            if child.returncode is None:
                with contextlib.suppress(OSError):
                    child.kill()

    def _run_previous(self, signum: int, frame: FrameType | None) -> None:
        previous = self.previous
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        # SIG_IGN (or None: not set from Python): ignored, as before

    def child_started(self, child: subprocess.Popen[Any]) -> None:
        self.children.append(child)
        if self.terminating:  # the old child exited asking for a restart as SIGTERM came
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGTERM)

    def close(self) -> None:
        self._closed.set()


@contextlib.contextmanager
def forward_sigterm_to_children(timeout: float) -> Iterator[None]:
    """Within the block, SIGTERM is forwarded to the subprocesses it starts (main thread only).

    The children are the ``subprocess.Popen`` objects created in the block: ``Popen`` is a
    recording subclass meanwhile (a reloader's parent runs no other thread).
    """
    import subprocess  # a reloader's parent imported it already

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    forwarder = _Forwarder(timeout, previous)
    original_popen = subprocess.Popen

    class RecordingPopen(original_popen):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            forwarder.child_started(self)

    signal.signal(signal.SIGTERM, forwarder.on_sigterm)
    subprocess.Popen = RecordingPopen  # type: ignore[misc]
    try:
        yield
    finally:
        subprocess.Popen = original_popen  # type: ignore[misc]
        forwarder.close()
        if signal.getsignal(signal.SIGTERM) == forwarder.on_sigterm:
            signal.signal(signal.SIGTERM, previous)
