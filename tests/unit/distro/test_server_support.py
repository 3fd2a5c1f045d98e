"""Server support: uWSGI's post-fork and atexit hooks, and the reloaders' SIGTERM.

The servers themselves run in tests/integration/test_servers.py; here a fake ``uwsgi`` module
stands in for the one uWSGI creates, so the branches a given uWSGI build never takes (threads
off, no master process, hooks the application set first) are covered too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from telemetry_run import _reloaders, _uwsgi, cli
from telemetry_run.sdk import forking
from telemetry_run.sdk.diagnostics import InternalError


@dataclass
class FakeExitHook:
    flushed: int = 0

    def flush(self) -> None:
        self.flushed += 1


@dataclass
class FakeState:
    exit_hook: FakeExitHook = field(default_factory=FakeExitHook)


def fake_uwsgi(**attributes: Any) -> types.ModuleType:
    module = types.ModuleType("uwsgi")
    module.opt = {  # type: ignore[attr-defined]
        "master": True,
        "processes": b"2",
        "py-call-uwsgi-fork-hooks": b"true",  # what the launcher's variable sets
    }
    module.has_threads = 1  # type: ignore[attr-defined]
    module.worker_id = lambda: 0  # type: ignore[attr-defined]
    for name, value in attributes.items():
        setattr(module, name, value)
    return module


def fake_uwsgidecorators(uwsgi: types.ModuleType) -> types.ModuleType:
    """What importing uwsgidecorators does: its chain becomes uwsgi.post_fork_hook."""
    module = types.ModuleType("uwsgidecorators")
    chain: list[Any] = []

    def postfork_chain_hook() -> None:
        for f in chain:
            f()

    module.postfork_chain = chain  # type: ignore[attr-defined]
    module.postfork_chain_hook = postfork_chain_hook  # type: ignore[attr-defined]
    uwsgi.post_fork_hook = postfork_chain_hook  # type: ignore[attr-defined]
    uwsgi.spooler = object()  # type: ignore[attr-defined]
    return module


@pytest.fixture
def in_uwsgi(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install a fake uwsgi module (and optionally uwsgidecorators) for one test."""
    monkeypatch.setattr(_uwsgi, "_set_up_in", None)

    def install(decorators: bool = True, **attributes: Any) -> types.ModuleType:
        uwsgi = fake_uwsgi(**attributes)
        monkeypatch.setitem(sys.modules, "uwsgi", uwsgi)
        if decorators:
            real_import = _uwsgi.importlib.import_module

            def import_module(name: str, package: str | None = None) -> types.ModuleType:
                if name == "uwsgidecorators":
                    module = sys.modules.get(name) or fake_uwsgidecorators(uwsgi)
                    sys.modules[name] = module
                    return module
                return real_import(name, package)

            monkeypatch.setattr(_uwsgi.importlib, "import_module", import_module)
            monkeypatch.delitem(sys.modules, "uwsgidecorators", raising=False)
        else:
            monkeypatch.setitem(sys.modules, "uwsgidecorators", None)  # import fails
        return uwsgi

    return install


@pytest.fixture
def reported(_clean_globals: list[InternalError]) -> list[InternalError]:
    """The internal errors reported during the test (it must be marked internal_errors)."""
    return _clean_globals


def test_not_uwsgi_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "uwsgi", raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    _uwsgi.setup_if_running(FakeState())  # type: ignore[arg-type]
    # A normal interpreter (it has argv): no per-import check either.
    assert not any(isinstance(f, _uwsgi.WaitForUwsgi) for f in sys.meta_path)


def test_post_fork_repair_joins_the_uwsgidecorators_chain_first(in_uwsgi: Any) -> None:
    app_hook_calls: list[str] = []
    uwsgi = in_uwsgi(post_fork_hook=lambda: app_hook_calls.append("app"))
    state = FakeState()
    _uwsgi.setup_if_running(state)  # type: ignore[arg-type]
    decorators = sys.modules["uwsgidecorators"]
    chain = decorators.postfork_chain  # type: ignore[attr-defined]
    assert chain[0] is forking.after_fork_in_child  # before the app's postfork functions
    assert uwsgi.post_fork_hook is decorators.postfork_chain_hook  # type: ignore[attr-defined]
    uwsgi.post_fork_hook()  # what uWSGI calls in each worker  # type: ignore[attr-defined]
    assert app_hook_calls == ["app"]  # the hook the app had set is kept


def test_importing_uwsgidecorators_keeps_the_apps_spooler(in_uwsgi: Any) -> None:
    spooler = object()
    uwsgi = in_uwsgi(spooler=spooler)
    _uwsgi.setup_if_running(FakeState())  # type: ignore[arg-type]
    assert uwsgi.spooler is spooler  # type: ignore[attr-defined]


def test_without_a_master_the_post_fork_hook_is_chained(in_uwsgi: Any) -> None:
    calls: list[str] = []
    uwsgi = in_uwsgi(decorators=False, post_fork_hook=lambda: calls.append("app"))
    _uwsgi.setup_if_running(FakeState())  # type: ignore[arg-type]
    assert uwsgi.post_fork_hook is not None  # type: ignore[attr-defined]
    uwsgi.post_fork_hook()  # type: ignore[attr-defined]
    assert calls == ["app"]


def test_uwsgi_atexit_runs_the_apps_hook_then_flushes(in_uwsgi: Any) -> None:
    state = FakeState()
    order: list[str] = []
    uwsgi = in_uwsgi(atexit=lambda: order.append(f"app, flushed={state.exit_hook.flushed}"))
    _uwsgi.setup_if_running(state)  # type: ignore[arg-type]
    uwsgi.atexit()  # type: ignore[attr-defined]
    assert order == ["app, flushed=0"]
    assert state.exit_hook.flushed == 1


def test_setup_runs_once_per_process(in_uwsgi: Any) -> None:
    in_uwsgi()
    _uwsgi.setup_if_running(FakeState())  # type: ignore[arg-type]
    chain = sys.modules["uwsgidecorators"].postfork_chain  # type: ignore[attr-defined]
    _uwsgi.setup_if_running(FakeState())  # type: ignore[arg-type]
    assert chain.count(forking.after_fork_in_child) == 1


@pytest.mark.parametrize("worker_id", [0, 1, 2])
def test_threads_off_warns_once(
    in_uwsgi: Any, caplog: pytest.LogCaptureFixture, worker_id: int
) -> None:
    in_uwsgi(has_threads=0, worker_id=lambda: worker_id)
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        _uwsgi.setup_if_running(FakeState())  # type: ignore[arg-type]
    warnings = [r.getMessage() for r in caplog.records if "--enable-threads" in r.getMessage()]
    # The master (or with --lazy-apps the first worker) says it; the other workers do not.
    assert warnings == ([_uwsgi.THREADS_WARNING] if worker_id <= 1 else [])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, False),
        ({"enable-threads": True}, True),
        ({"threads": b"4"}, True),
        ({"threads": [b"0", b"2"]}, True),
        ({"threads": b"lots"}, False),
    ],
)
def test_threads_from_options_without_has_threads(options: dict[str, Any], expected: bool) -> None:
    uwsgi = types.SimpleNamespace(opt=options)
    assert _uwsgi.threads_enabled(uwsgi) is expected


def test_threads_on_does_not_warn(in_uwsgi: Any, caplog: pytest.LogCaptureFixture) -> None:
    in_uwsgi(has_threads=1)
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        _uwsgi.setup_if_running(FakeState())  # type: ignore[arg-type]
    assert not caplog.records


@pytest.mark.parametrize(
    ("options", "warned"),
    [
        ({"master": True}, True),  # import telemetry_run.auto from an ini file without it
        ({"master": True, "lazy-apps": True}, True),  # the master still forks every worker
        ({"master": True, "py-call-uwsgi-fork-hooks": b"0"}, False),  # the user's choice
        ({"master": True, "py-call-uwsgi-fork-hooks": True}, False),
    ],
)
def test_without_fork_hooks_the_master_warns_once(
    in_uwsgi: Any, caplog: pytest.LogCaptureFixture, options: dict[str, Any], warned: bool
) -> None:
    in_uwsgi(opt=options)
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        _uwsgi.setup_if_running(FakeState())  # type: ignore[arg-type]
        _uwsgi.setup_if_running(FakeState())  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ([_uwsgi.FORK_HOOKS_WARNING] if warned else [])


def test_an_embedded_interpreter_waits_for_the_uwsgi_module(
    monkeypatch: pytest.MonkeyPatch, in_uwsgi: Any
) -> None:
    # Under the launcher uWSGI runs our sitecustomize before it creates its module.
    monkeypatch.delitem(sys.modules, "uwsgi", raising=False)
    monkeypatch.setattr(sys, "orig_argv", [])
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    state = FakeState()
    _uwsgi.setup_if_running(state)  # type: ignore[arg-type]
    waiter = sys.meta_path[0]
    assert isinstance(waiter, _uwsgi.WaitForUwsgi)
    assert waiter.find_spec("an_early_import") is None  # finds nothing, ever
    assert _uwsgi._set_up_in is None  # the uwsgi module does not exist yet
    uwsgi = in_uwsgi()  # uWSGI fills its module, then imports the application
    assert waiter.find_spec("the_application") is None
    assert _uwsgi._set_up_in == os.getpid()
    assert waiter.done
    uwsgi.atexit()  # type: ignore[attr-defined]
    assert state.exit_hook.flushed == 1


@pytest.mark.internal_errors
def test_a_failing_setup_never_fails_an_import(
    monkeypatch: pytest.MonkeyPatch, in_uwsgi: Any, reported: list[InternalError]
) -> None:
    in_uwsgi()

    def broken(state: Any) -> bool:
        raise RuntimeError("setup bug")

    monkeypatch.setattr(_uwsgi, "_setup", broken)
    waiter = _uwsgi.WaitForUwsgi(FakeState())  # type: ignore[arg-type]
    assert waiter.find_spec("the_application") is None
    assert waiter.done
    assert [e.where for e in reported] == ["uWSGI setup"]


# -- reloaders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("users", [None, "0", "true"])
def test_the_launcher_asks_uwsgi_for_its_fork_hooks_unless_the_user_chose(
    users: str | None,
) -> None:
    """Without the option a uWSGI worker forked while a master thread holds the GIL never serves
    (tests/integration/test_servers.py shows it); a user's own setting, off included, wins."""
    environ = {} if users is None else {cli.UWSGI_FORK_HOOKS: users}
    env = cli.child_environment(environ, "/site")
    assert cli.UWSGI_FORK_HOOKS == "UWSGI_PY_CALL_UWSGI_FORK_HOOKS"  # uWSGI's name for it
    assert env[cli.UWSGI_FORK_HOOKS] == (users or "true")


def test_the_reloaders_restart_loops_are_wrapped_once() -> None:
    werkzeug = types.ModuleType("werkzeug._reloader")

    class ReloaderLoop:
        def restart_with_reloader(self) -> int:
            return 7

    werkzeug.ReloaderLoop = ReloaderLoop  # type: ignore[attr-defined]
    django = types.ModuleType("django.utils.autoreload")
    django.restart_with_reloader = lambda: 5  # type: ignore[attr-defined]
    for _ in range(2):  # a second bootstrap hook (telemetry_run.auto) changes nothing
        _reloaders._guarded(_reloaders._patch_werkzeug, 1.0, werkzeug)
        _reloaders._guarded(_reloaders._patch_django, 1.0, django)
    original = ReloaderLoop.restart_with_reloader.__telemetry_run_wrapped__  # type: ignore[attr-defined]
    assert original.__name__ == "restart_with_reloader"
    assert not hasattr(original, "__telemetry_run_wrapped__")  # wrapped once, not twice
    assert ReloaderLoop().restart_with_reloader() == 7  # what the loop returns, unchanged
    assert django.restart_with_reloader() == 5  # type: ignore[attr-defined]


@pytest.mark.internal_errors
def test_an_unknown_reloader_shape_is_reported_and_left_alone(
    reported: list[InternalError],
) -> None:
    werkzeug = types.ModuleType("werkzeug._reloader")  # no ReloaderLoop: a future werkzeug
    _reloaders._guarded(_reloaders._patch_werkzeug, 1.0, werkzeug)
    assert [e.where for e in reported] == ["reloader support for werkzeug._reloader"]


# A reloader's parent in miniature: its own SIGTERM handler is sys.exit(0), and its restart loop
# waits in subprocess.call, which SIGKILLs the child when that handler raises.
RELOADER = r"""
import signal, subprocess, sys
from telemetry_run._reloaders import forward_sigterm_to_children

CHILD = sys.argv[1]
signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))

def restart_with_reloader():
    while True:
        code = subprocess.call([sys.executable, "-c", CHILD])
        if code != 3:
            return code

with forward_sigterm_to_children(timeout=float(sys.argv[2])):
    sys.exit(restart_with_reloader())
"""

# A child that needs a moment to flush on SIGTERM (as our exit hook does), then reports.
CHILD = r"""
import os, signal, sys, time
def on_term(*args):
    time.sleep(0.3)
    open(os.environ["REPORT"], "w").write("flushed")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(60)
"""

STUBBORN_CHILD = r"""
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def start_reloader(tmp_path: Path, child: str, timeout: float) -> subprocess.Popen[str]:
    env = {**os.environ, "REPORT": str(tmp_path / "report")}
    return subprocess.Popen(
        [sys.executable, "-c", RELOADER, textwrap.dedent(child), str(timeout)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_sigterm_reaches_the_reloaders_child_which_flushes(tmp_path: Path) -> None:
    # The bound only catches a child that never exits: a loaded machine may take seconds.
    proc = start_reloader(tmp_path, CHILD, timeout=60)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0  # the child's exit code, as the reloader returns it
    finally:
        stop(proc)
    assert (tmp_path / "report").read_text() == "flushed"  # not SIGKILLed mid-flush


def test_a_second_sigterm_runs_the_reloaders_own_handler(tmp_path: Path) -> None:
    proc = start_reloader(tmp_path, STUBBORN_CHILD, timeout=30)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)  # forwarded; this child ignores it
        time.sleep(0.3)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)  # sys.exit(0): subprocess.call kills the child
        assert proc.wait(20) == 0
    finally:
        stop(proc)


def test_a_child_that_ignores_sigterm_is_killed_after_the_bound(tmp_path: Path) -> None:
    proc = start_reloader(tmp_path, STUBBORN_CHILD, timeout=0.5)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        # The loop returns the child's -9, which sys.exit turns into 247, as in a reloader.
        assert proc.wait(20) == -signal.SIGKILL & 0xFF
    finally:
        stop(proc)
