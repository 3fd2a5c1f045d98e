"""The exit hook's decisions that need no real process: when a flush starts at all, which
interrupted stacks defer it, and the child bootstrap wrapper. The signals and the children
themselves are tested with real processes (tests/integration/test_sigterm.py,
test_child_processes.py, tests/reliability/test_sigterm_under_locks.py)."""

from __future__ import annotations

import io
import logging
import sys
import types
from types import FrameType

import pytest

from telemetry_run import exit as exit_module
from telemetry_run.exit import ExitHook, may_hold_locks
from telemetry_run.sdk.diagnostics import Diagnostics
from telemetry_run.sdk.exporters.memory import InMemorySpanExporter
from telemetry_run.sdk.processors.batch import BatchSpanProcessor
from telemetry_run.sdk.trace.provider import TracerProvider


@pytest.fixture
def provider() -> TracerProvider:
    diagnostics = Diagnostics()
    provider = TracerProvider(diagnostics=diagnostics, shutdown_on_exit=False)
    provider.add_span_processor(
        BatchSpanProcessor(InMemorySpanExporter(), diagnostics=diagnostics, schedule_delay=60.0)
    )
    return provider


def hook_for(provider: TracerProvider, err: io.StringIO) -> ExitHook:
    return ExitHook(provider, provider.diagnostics, timeout=5.0, err=err)


def test_a_child_with_nothing_pending_starts_no_flush(provider: TracerProvider) -> None:
    err = io.StringIO()
    hook_for(provider, err).flush_child()
    assert not provider.is_shutdown  # nothing pending: no shutdown, no exporter call
    assert err.getvalue() == ""


def test_a_child_with_spans_pending_flushes_and_reports(provider: TracerProvider) -> None:
    err = io.StringIO()
    provider.get_tracer("t").start_span("queued").end()
    hook = ExitHook(provider, provider.diagnostics, timeout=5.0, err=err, always_report=True)
    hook.flush_child()
    assert provider.is_shutdown
    assert "spans produced=1 exported=1 dropped=0" in err.getvalue()


def test_an_unknown_processor_is_always_flushed(provider: TracerProvider) -> None:
    class Buffering:  # a plugin's processor: it may buffer spans our counters do not see
        shut = False

        def on_start(self, span: object, parent_context: object = None) -> None: ...
        def on_end(self, span: object) -> None: ...
        def force_flush(self, *, deadline: float) -> bool:
            return True

        def shutdown(self, *, deadline: float) -> None:
            Buffering.shut = True

    provider.add_span_processor(Buffering())  # type: ignore[arg-type]
    hook_for(provider, io.StringIO()).flush_child()
    assert Buffering.shut


def test_the_exit_flush_runs_once_per_process(provider: TracerProvider) -> None:
    err = io.StringIO()
    hook = ExitHook(provider, provider.diagnostics, timeout=5.0, err=err, always_report=True)
    hook.flush()
    hook.flush()
    hook.flush_child()
    assert err.getvalue().count("telemetry-run: spans produced=") == 1


def test_a_sigterm_inside_the_first_lookup_of_the_exit_state_still_gives_one_line(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Pool worker's end (flush_child) meets Pool.terminate()'s SIGTERM: the handler runs
    # between two bytecodes of the main thread, here while the child's exit state is being
    # made, and its flush thread shuts down; the interrupted flush then goes on.
    err = io.StringIO()
    hook = ExitHook(provider, provider.diagnostics, timeout=5.0, err=err, always_report=True)
    interrupted: list[bool] = []

    class InterruptedProcess(exit_module._Process):
        def __init__(self, pid: int) -> None:
            super().__init__(pid)
            if not interrupted:
                interrupted.append(True)
                hook.flush_child()  # what the signal's flush thread does meanwhile

    monkeypatch.setattr(exit_module, "_Process", InterruptedProcess)
    provider.get_tracer("t").start_span("last").end()
    hook.flush_child()
    assert interrupted
    assert err.getvalue().count("telemetry-run: spans produced=") == 1, err.getvalue()
    assert "spans produced=1 exported=1 dropped=0" in err.getvalue()


def _frame_in(module_name: str) -> FrameType:
    """A live frame whose globals say it belongs to ``module_name``."""
    namespace: dict[str, object] = {"__name__": module_name, "sys": sys}
    exec("def where():\n    return sys._getframe()\n", namespace)
    where = namespace["where"]
    assert isinstance(where, types.FunctionType)
    frame = where()
    assert isinstance(frame, FrameType)
    return frame


@pytest.mark.parametrize(
    "module",
    [
        "logging",
        "threading",
        "importlib._bootstrap",
        "telemetry_run.sdk.processors.batch",
        "telemetry_run.sdk.diagnostics",
        "telemetry_run.exit",
    ],
)
def test_a_stack_inside_a_lock_owner_defers_the_flush(module: str) -> None:
    assert may_hold_locks(_frame_in(module))


@pytest.mark.parametrize("module", ["__main__", "myapp.db", "telemetry_run.instrumentors.flask"])
def test_an_application_stack_lets_the_frame_wait(module: str) -> None:
    # Its callers (this test, pytest) are no lock owners either.
    assert not may_hold_locks(_frame_in(module))


def test_the_real_lock_owners_are_recognised() -> None:
    seen: list[bool] = []

    class Recording(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(may_hold_locks(sys._getframe()))  # inside logging's handler lock

    log = logging.getLogger("test_exit_hook")
    handler = Recording()
    log.addHandler(handler)
    try:
        log.warning("x")
    finally:
        log.removeHandler(handler)
    assert seen == [True]


def test_the_child_bootstrap_is_wrapped_once_and_keeps_the_exit_code(
    provider: TracerProvider,
) -> None:
    calls: list[str] = []

    class BaseProcess:
        def _bootstrap(self, parent_sentinel: object = None) -> int:
            calls.append(f"run, flushed={provider.is_shutdown}")
            return 7

    module = types.ModuleType("multiprocessing.process")
    module.BaseProcess = BaseProcess  # type: ignore[attr-defined]
    hook = hook_for(provider, io.StringIO())
    hook._wrap_child_end("BaseProcess", "_bootstrap", "after", module)
    hook._wrap_child_end("BaseProcess", "_bootstrap", "after", module)  # no double wrap
    provider.get_tracer("t").start_span("child").end()
    assert BaseProcess()._bootstrap(parent_sentinel=3) == 7
    assert calls == ["run, flushed=False"]
    assert provider.is_shutdown  # flushed once the target returned


def test_an_exit_that_ends_in_os_exit_flushes_first(provider: TracerProvider) -> None:
    calls: list[str] = []

    class Worker:  # billiard.pool.Worker: _do_exit ends in os._exit
        def _do_exit(self, pid: int, exitcode: int, exc: object = None) -> None:
            calls.append(f"exit {exitcode}, flushed={provider.is_shutdown}")

    module = types.ModuleType("billiard.pool")
    module.Worker = Worker  # type: ignore[attr-defined]
    hook_for(provider, io.StringIO())._wrap_child_end("Worker", "_do_exit", "before", module)
    provider.get_tracer("t").start_span("child").end()
    Worker()._do_exit(1, 0)
    assert calls == ["exit 0, flushed=True"]


def test_an_unknown_version_is_reported_and_left_alone(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[str] = []
    monkeypatch.setattr("telemetry_run._servers.report", lambda where, exc: reported.append(where))
    module = types.ModuleType("billiard.process")  # no BaseProcess: an old billiard
    hook_for(provider, io.StringIO())._wrap_child_end("BaseProcess", "_bootstrap", "after", module)
    assert reported == ["child process support for billiard.process.BaseProcess"]
