"""The exit hook: flush what is queued within one deadline, at exit, on SIGTERM and at the end
of a multiprocessing child.

``atexit`` covers a normal exit. For SIGTERM (a container stopping, a reloader replacing its
child) a handler is installed only where the handler is still the default (not where it is
``SIG_IGN`` or a handler the user's sitecustomize set before us). What it does depends on who
calls it:

- it is still the installed handler: shut down, report, restore the default and re-send, so the
  process still dies by SIGTERM (return code -15, a shell shows 143);
- an application handler installed later chains to it (``prev(signum, frame)``): it flushes and
  returns, so the code after the call runs (closing a database, ``sys.exit(0)``) and the exit
  code is the application's; its exit then shuts down through ``atexit``. An application
  handler that does not chain exits through ``atexit`` as well.

A Python signal handler runs in the main thread between two bytecodes of whatever it
interrupted, maybe inside ``with lock:`` of the batch queue, the diagnostics, logging or the
import system. A flush there would wait for a lock its own thread holds, and the container
would hang until SIGKILL. So the signal frame takes no lock: it starts the flush on a thread of
its own (``_thread``: ``threading`` takes its registry lock to start one) and

- when no frame of the interrupted stack is in a module that owns such a lock (our SDK and exit
  hook, ``logging``, ``threading``, ``importlib``), waits for it until the deadline (and up to
  GRACE more for its report, which a loaded machine may delay), then returns or dies as above;
- otherwise returns at once, so the interrupted code can release its lock. The flush thread
  does the work, then sends SIGTERM again: the handler, finding the shutdown done, restores the
  default and re-sends. If the main thread does not get to run it (stuck in C) within GRACE
  after the deadline, the thread ends the process with status 143.

Children made by ``multiprocessing`` (``Process``, ``Pool``, ``ProcessPoolExecutor``, each start
method) and by billiard run ``BaseProcess._bootstrap`` and, forked, leave through ``os._exit``:
no ``atexit``. A post-import hook (nothing until the application imports ``multiprocessing``)
wraps ``_bootstrap``, so a child shuts down and reports its own spans (the counters restart at
the fork) when its target returns; billiard's pool workers call ``os._exit`` in their target
(``Worker._do_exit``, after their SIGTERM handler's ``sys.exit``), so that is wrapped too. A
process about to die (SIGTERM, the end of a child) with nothing pending starts no flush at all:
``Pool.terminate()`` stays prompt.

A Python handler runs only when the main thread gets back to bytecode. A main thread waiting in
C (``time.sleep``, a lock, a Pool worker waiting for the task queue's lock, which
``Pool.terminate()`` takes in the parent and never releases) is not woken if SIGTERM lands just
before that wait begins, or is taken by another thread: CPython leaves the handler pending, and
the process, which SIGTERM's default would have killed, waits as long as the wait lasts (for ever,
for a Pool worker, and so does the parent's ``join``). So wherever our handler is installed (the
launched process, each process it forks, multiprocessing children) SIGTERM is also written to a
wakeup fd (``signal.set_wakeup_fd``, unless the application set one) that a thread of ours
reads: when SIGTERM comes and our handler is the installed one, the thread runs the same
shutdown, then sends SIGTERM to the main thread itself, repeatedly until it dies
(``pthread_kill`` interrupts the wait, the pending handler runs and dies by the signal); past the
deadline and GRACE it ends the process with status 143, as above. An event loop that sets its
own wakeup fd (asyncio's ``add_signal_handler``) replaces ours and handles its signals itself.

All of it is bounded by TELEMETRY_RUN_SHUTDOWN_TIMEOUT, one deadline per process opened by the
first of these events: a later flush gets what remains (a fresh one if it has passed: an
application that drained for longer). What was not delivered (or was cut by the span limits)
is reported on one stderr line; with TELEMETRY_RUN_DEBUG the line is printed always.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from telemetry_run.sdk.diagnostics import Diagnostics
    from telemetry_run.sdk.logs.provider import LoggerProvider
    from telemetry_run.sdk.metrics.provider import MeterProvider
    from telemetry_run.sdk.trace.provider import TracerProvider

__all__ = ["ExitHook", "format_exit_line"]

#: How long after the deadline a deferred SIGTERM waits for the main thread to die by it, and
#: the signal frame for a shutdown that passed its deadline to report.
GRACE: Final = 1.0

#: Modules whose code may hold a lock the flush needs (a prefix of ``__name__``).
LOCK_OWNERS: Final = (
    "telemetry_run.sdk",
    "telemetry_run.exit",
    "telemetry_run.sdk._log",
    "logging",
    "threading",
    "importlib",
)

#: Where a child process ends without ``atexit``: (module, class, method, when the flush runs).
#: A bootstrap returns the exit code its caller passes to ``os._exit``: the flush runs after it,
#: and the SIGTERM watch starts before it (the child's main thread runs it).
#: billiard's pool workers call ``os._exit`` inside their target: the flush runs before that.
CHILD_ENDS: Final = (
    ("multiprocessing.process", "BaseProcess", "_bootstrap", "after"),
    ("billiard.process", "BaseProcess", "_bootstrap", "after"),
    ("billiard.pool", "Worker", "_do_exit", "before"),
)

_WRAPPED: Final = "__telemetry_run_wrapped__"


def format_exit_line(counts: dict[str, int], logs: dict[str, int] | None = None) -> str:
    """The fixed-format report line (tests and log scrapers parse it).

    Spans first (each one produced is exported or dropped for one reason), then how many span
    sends were retried, then what the span limits cut from spans that were kept and how many
    invalid attribute values were refused; then, once metrics were exported, their data points
    exported and dropped; then, when logs are exported, the log records' counts
    (``logs produced=… exported=… dropped=… (reasons)``), apart from the spans'.
    """
    line = (
        f"telemetry-run: spans produced={counts['produced']} exported={counts['exported']} "
        f"dropped={counts['dropped']} (queue_full={counts['queue_full']}, "
        f"export_failed={counts['export_failed']}, rejected={counts['rejected']}, "
        f"shutdown={counts['shutdown']}) retried={counts['retried']} "
        f"over_limits=(attributes={counts['attributes_over_limit']}, "
        f"events={counts['events_over_limit']}, links={counts['links_over_limit']}) "
        f"invalid_attributes={counts['attributes_dropped']}" + _metric_points(counts)
    )
    if logs is not None:
        line += (
            f" logs produced={logs['produced']} exported={logs['exported']} "
            f"dropped={logs['dropped']} (queue_full={logs['queue_full']}, "
            f"export_failed={logs['export_failed']}, rejected={logs['rejected']}, "
            f"shutdown={logs['shutdown']})"
        )
    return line


def _metric_points(counts: dict[str, int]) -> str:
    """The metric data points handed to exporters, once there were any."""
    exported = counts.get("metric_points_exported", 0)
    dropped = counts.get("metric_points_dropped", 0)
    if not exported and not dropped:
        return ""
    return f" metric_points exported={exported} dropped={dropped}"


def _worth_a_line(counts: dict[str, int], logs: dict[str, int] | None = None) -> bool:
    """Something was not delivered, or cut or refused on the way."""
    if logs is not None and (logs["produced"] != logs["exported"] or logs["dropped"]):
        return True
    return bool(
        counts["produced"] != counts["exported"]
        or counts["dropped"]
        or counts["attributes_dropped"]
        or counts["attributes_over_limit"]
        or counts["events_over_limit"]
        or counts["links_over_limit"]
        or counts.get("metric_points_dropped", 0)
    )


def may_hold_locks(frame: FrameType | None) -> bool:
    """Whether the interrupted stack is inside code that may hold a lock the flush needs."""
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if isinstance(name, str) and name.startswith(LOCK_OWNERS):
            return True
        frame = frame.f_back
    return False


class _Process:
    """The exit state of one process (a forked child starts its own)."""

    __slots__ = (
        "deadline",
        "flush_claim",
        "flush_done",
        "pid",
        "resend",
        "shut_down",
        "shutdown_claim",
        "shutdown_done",
    )

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.deadline: float | None = None
        # Claimed with a non-blocking acquire: safe in a signal frame, once per process.
        self.shutdown_claim = _thread.allocate_lock()
        self.shutdown_done = threading.Event()
        self.shut_down = False  # the shutdown finished (set before shutdown_done)
        self.resend = False  # SIGTERM is to be sent again once the shutdown finished
        self.flush_claim = _thread.allocate_lock()
        self.flush_done = threading.Event()


class ExitHook:
    """Flushes and shuts the provider down once per process, at exit, on SIGTERM, or at the
    end of a multiprocessing child; the metrics provider too, if one was built, within the
    same deadline."""

    def __init__(
        self,
        provider: TracerProvider,
        diagnostics: Diagnostics,
        timeout: float,
        err: TextIO | None = None,
        *,
        always_report: bool = False,
        meter_provider: Callable[[], MeterProvider | None] | None = None,
        logs: LoggerProvider | None = None,
    ):
        self._provider = provider
        #: The metrics provider if one was built by now (built on first use, maybe never).
        self._meter_provider = meter_provider
        self._logs = logs  # OTEL_LOGS_EXPORTER: flushed and reported with the spans
        self._diagnostics = diagnostics
        self._timeout = timeout
        self._err = err
        self._always_report = always_report  # TELEMETRY_RUN_DEBUG: the line even when all is well
        self._processes: dict[int, _Process] = {}  # by pid; a forked child adds its own
        self._watch_fds = (-1, -1)  # the SIGTERM watch's pipe; its write end is the wakeup fd
        self._unwatch_registered = False
        self._watch_paused = False  # between a fork's before and after hooks
        self.sigterm_installed = False

    def install(self) -> None:
        from telemetry_run._import_hooks import register_post_import_hook

        atexit.register(self.flush)
        try:
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, self._on_sigterm)
                self.sigterm_installed = True
                _hold_sigterm_across_forks()
                self._watch_or_report()
        except ValueError:
            pass  # not the main thread (an embedded interpreter): atexit still covers exits
        for module, cls, method, when in CHILD_ENDS:
            wrap = functools.partial(self._wrap_child_end, cls, method, when)
            register_post_import_hook(wrap, module)

    # -- the three ways out ------------------------------------------------------------------

    def flush(self) -> None:
        """Shut the provider down within the deadline and report what was not delivered."""
        process = self._current()
        self._shut_down(process, self._deadline(process), skip_if_idle=False)

    def flush_child(self) -> None:
        """A multiprocessing child's end: as ``flush``, but nothing at all if nothing is pending."""
        process = self._current()
        self._shut_down(process, self._deadline(process), skip_if_idle=True)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # No lock is taken in this frame (see the module docstring).
        installed = signal.getsignal(signal.SIGTERM) == self._on_sigterm
        process = self._current()
        if installed and process.shut_down:
            _die()
            return
        deadline = self._deadline(process)
        deferred = may_hold_locks(frame)
        if installed:
            process.resend = process.resend or deferred
            done = process.shutdown_done
            if process.shutdown_claim.acquire(blocking=False):
                process.shutdown_claim.release()  # _shut_down claims it on the thread
                self._on_thread(self._shut_down, process, deadline, skip_if_idle=True)
            elif deferred:
                process.resend = True  # the shutdown under way (at exit) sends it when done
        else:
            done = process.flush_done
            if process.flush_claim.acquire(blocking=False):
                self._on_thread(self._force_flush, process, deadline)
        if deferred:
            return
        if not done.wait(max(0.0, deadline - time.monotonic())):
            # The work itself stops at the deadline; on a loaded machine its report (the exit
            # line accounting for every span) may need a moment more: GRACE at most.
            done.wait(GRACE)
        if installed:
            _die()

    # -- the work ---------------------------------------------------------------------------

    def _shut_down(self, process: _Process, deadline: float, *, skip_if_idle: bool) -> None:
        if not process.shutdown_claim.acquire(blocking=False):
            process.shutdown_done.wait(max(0.0, deadline - time.monotonic()))  # under way
            return
        try:
            if not (skip_if_idle and self._idle()):
                self._provider.shutdown(max(0.0, deadline - time.monotonic()))
                if self._logs is not None:  # what the spans left of the same deadline
                    self._logs.shutdown(max(0.0, deadline - time.monotonic()))
            meters = self._meters()
            if meters is not None:  # its last points, within the same deadline
                meters.shutdown(max(0.0, deadline - time.monotonic()))
            self._report()
        finally:
            process.shut_down = True
            resend = process.resend
            if resend:  # before the waiters wake: an exit at once would end with 0, not -15
                os.kill(os.getpid(), signal.SIGTERM)
            process.shutdown_done.set()
        if resend and threading.main_thread().ident != _thread.get_ident():
            self._end_if_stuck(deadline)

    def _force_flush(self, process: _Process, deadline: float) -> None:
        try:
            self._provider.force_flush(max(0.0, deadline - time.monotonic()))
            if self._logs is not None:
                self._logs.force_flush(max(0.0, deadline - time.monotonic()))
            meters = self._meters()
            if meters is not None:
                meters.force_flush(max(0.0, deadline - time.monotonic()))
        finally:
            process.flush_done.set()

    def _meters(self) -> MeterProvider | None:
        return self._meter_provider() if self._meter_provider is not None else None

    def _report(self) -> None:
        counts = self._diagnostics.snapshot()
        logs = self._logs.diagnostics.snapshot() if self._logs is not None else None
        if self._always_report or _worth_a_line(counts, logs):
            with contextlib.suppress(OSError, ValueError):  # stderr closed: nothing to tell
                print(format_exit_line(counts, logs), file=self._err or sys.stderr, flush=True)

    def _idle(self) -> bool:
        """Every span produced here was exported or counted, and nothing else buffers any."""
        from telemetry_run.sdk.processors.batch import BatchSpanProcessor
        from telemetry_run.sdk.processors.simple import SimpleSpanProcessor

        counts = self._diagnostics.snapshot()
        known = (BatchSpanProcessor, SimpleSpanProcessor)
        # The console waterfall holds exported spans until their trace's root ends.
        console = sys.modules.get("telemetry_run.sdk.exporters.console")
        return (
            counts["produced"] <= counts["exported"] + counts["dropped"]
            and all(isinstance(processor, known) for processor in self._provider.processors)
            and not (console is not None and console.spans_held())
            and (self._logs is None or self._logs.idle())
        )

    def _end_if_stuck(self, deadline: float) -> None:
        """After the shutdown, SIGTERM re-sent or pending: the main thread's handler dies by it.

        The main thread may be waiting in C, where a signal that lands just before the wait
        begins leaves the handler pending for good: it is sent to the main thread again and
        again (``pthread_kill`` interrupts the wait) until the handler has run. Past the
        deadline and GRACE, still alive and still ours: the main thread is stuck in C that
        ignores signals, and the process ends as SIGTERM would have (an application that
        installed its own handler meanwhile decides for itself).
        """
        main = threading.main_thread().ident
        end = max(deadline, time.monotonic()) + GRACE
        pause = 0.01
        while main is not None and time.monotonic() < end:
            time.sleep(pause)  # the signal already sent gets its chance first
            if signal.getsignal(signal.SIGTERM) != self._on_sigterm:
                return  # the handler ran (the default is back: dying) or it is the app's
            signal.pthread_kill(main, signal.SIGTERM)
            pause = min(2 * pause, 0.2)
        if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            os._exit(128 + signal.SIGTERM)

    def _on_thread(self, work: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        def run() -> None:
            try:
                work(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001  # never a traceback at a process's end
                self._diagnostics.internal_error("the exit flush", exc)

        try:
            _thread.start_new_thread(run, ())
        except RuntimeError:  # the interpreter is finalizing: no thread can start
            run()

    # -- a child's main thread stuck in C ----------------------------------------------------

    def _watch_or_report(self) -> None:
        try:
            self.watch_sigterm()
        except Exception as exc:  # noqa: BLE001  # the handler alone, as before
            self._diagnostics.internal_error("the SIGTERM watch", exc)

    def watch_sigterm(self) -> None:
        """In the main thread: have SIGTERM seen by a thread of ours too, once per process."""
        if self._watch_fds != (-1, -1):
            return  # this process's watch runs already
        if signal.getsignal(signal.SIGTERM) != self._on_sigterm:
            return  # not ours (SIG_IGN, the application's): nothing to back up
        read_fd, write_fd = os.pipe()
        try:
            os.set_blocking(write_fd, False)  # the C handler must never block on it
            previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (OSError, ValueError):  # not the main thread: the handler alone, as before
            os.close(read_fd)
            os.close(write_fd)
            return
        if previous != -1:  # the application's (an event loop's): kept
            signal.set_wakeup_fd(previous)
            os.close(read_fd)
            os.close(write_fd)
            return
        if not self._unwatch_registered:  # once: a fork inherits the registration
            from telemetry_run.sdk import forking

            os.register_at_fork(before=self._pause_watch, after_in_parent=self._resume_watch)
            # Through the SDK's fork repair, which uWSGI's post-fork chain runs too: a worker
            # it forks in C must not write its signals into the master's pipe.
            forking.register(self._unwatch_after_fork)
            self._unwatch_registered = True
        self._watch_fds = (read_fd, write_fd)
        self._on_thread(self._watch, read_fd)

    def _pause_watch(self) -> None:
        """Before a fork: the new process must not start life writing its signals into our
        pipe (a SIGTERM sent to it at once would wake this process's watch)."""
        self._watch_paused = False
        if self._watch_fds == (-1, -1):
            return
        with contextlib.suppress(ValueError):  # forked from another thread: the child resets
            previous = signal.set_wakeup_fd(-1)
            if previous == self._watch_fds[1]:
                self._watch_paused = True
            else:
                signal.set_wakeup_fd(previous)  # the application's since: left as it was

    def _resume_watch(self) -> None:
        if self._watch_paused:
            self._watch_paused = False
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(self._watch_fds[1], warn_on_full_buffer=False)

    def _unwatch_after_fork(self) -> None:
        """A fork of a watched process shares its pipe: its signals must not wake the parent's
        watch. The child (its one thread is its main thread now) starts a watch of its own."""
        fds, self._watch_fds = self._watch_fds, (-1, -1)
        paused, self._watch_paused = self._watch_paused, False  # by the parent, for this fork
        if fds == (-1, -1):
            return
        mine = False
        with contextlib.suppress(OSError, ValueError):
            previous = signal.set_wakeup_fd(-1)
            mine = previous == fds[1] or (previous == -1 and paused)
            if not mine:  # set by someone else since: theirs stays
                signal.set_wakeup_fd(previous)
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if mine:
            with contextlib.suppress(Exception):  # a fork callback never logs (see forking)
                self.watch_sigterm()

    def _watch(self, read_fd: int) -> None:
        while True:
            try:
                data = os.read(read_fd, 64)
            except InterruptedError:
                continue
            if not data:
                return
            if signal.SIGTERM in data and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                break
        process = self._current()
        deadline = self._deadline(process)
        self._shut_down(process, deadline, skip_if_idle=True)  # or wait for the one under way
        self._end_if_stuck(deadline)

    # -- per process ------------------------------------------------------------------------

    def _current(self) -> _Process:
        """This process's exit state, the same object whoever asks first.

        SIGTERM's handler runs between two bytecodes of the main thread, maybe inside this very
        method (a Pool worker's end meets ``Pool.terminate()``). Check-then-assign would let the
        interrupted call overwrite the state the handler made, and two shutdowns would each
        print an exit line, the first before the batch in flight was counted. ``setdefault``
        is one C call no handler can split: the first state made for a pid is the one kept.
        """
        pid = os.getpid()
        processes = self._processes
        process = processes.get(pid)
        if process is None:
            process = processes.setdefault(pid, _Process(pid))
            for other in list(processes):
                if other != pid:
                    processes.pop(other, None)  # a forked child drops its parent's
        return process

    def _deadline(self, process: _Process) -> float:
        """One deadline per process, opened by its first flush; a fresh one once it passed."""
        now = time.monotonic()
        if process.deadline is None or process.deadline <= now:
            process.deadline = now + self._timeout
        return process.deadline

    # -- multiprocessing children -----------------------------------------------------------

    def _wrap_child_end(self, cls: str, method: str, when: str, module: ModuleType) -> None:
        try:
            owner = module.__dict__[cls]
            original = owner.__dict__[method]
            if getattr(original, _WRAPPED, None) is None:
                setattr(owner, method, _flushing(original, self, before=when == "before"))
        except Exception as exc:  # noqa: BLE001  # a version we do not know: left as it is
            from telemetry_run._servers import report

            report(f"child process support for {module.__name__}.{cls}", exc)


def _flushing(method: Callable[..., Any], hook: ExitHook, *, before: bool) -> Callable[..., Any]:
    """``method``, with the child's flush before it runs or once it returned (or raised)."""

    def flush() -> None:
        try:
            hook.flush_child()
        except Exception as exc:  # noqa: BLE001  # the child's exit code stays its own
            hook._diagnostics.internal_error("the exit flush of a child process", exc)

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if before:
            flush()
            return method(self, *args, **kwargs)
        try:
            hook.watch_sigterm()
        except Exception as exc:  # noqa: BLE001  # the child runs as it would without it
            hook._diagnostics.internal_error("the SIGTERM watch of a child process", exc)
        try:
            return method(self, *args, **kwargs)
        finally:
            flush()

    setattr(wrapper, _WRAPPED, method)
    return wrapper


#: Threads that blocked SIGTERM for the fork they are making (see the module docstring).
_holding: set[int] = set()
_hooks_registered: list[bool] = []


def _hold_sigterm_across_forks() -> None:
    if not _hooks_registered:  # once per interpreter: a fork inherits the registration
        _hooks_registered.append(True)
        os.register_at_fork(
            before=_hold_sigterm,
            after_in_parent=_release_sigterm,
            after_in_child=_release_sigterm_in_child,
        )


def _hold_sigterm() -> None:
    """Before a fork: a SIGTERM sent to the new child waits until it can be handled."""
    try:
        if not callable(signal.getsignal(signal.SIGTERM)):
            return  # the default kills at once; SIG_IGN ignores: nothing to lose
        if signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}):
            _holding.add(threading.get_ident())  # blocked by us: unblocked by us
    except (OSError, ValueError):
        pass  # the fork goes on as without us


def _release_sigterm() -> None:
    ident = threading.get_ident()
    if ident in _holding:
        _holding.discard(ident)
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _release_sigterm_in_child() -> None:
    """The child's one thread is the one that forked; the others' entries are the parent's."""
    held = threading.get_ident() in _holding
    _holding.clear()
    if held:
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _die() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
