"""A fork that skips Python's hooks (uWSGI forks in C) is repaired by one call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import ctypes, os, sys
from telemetry_run.sdk import (
    BatchSpanProcessor, Diagnostics, InMemorySpanExporter, TracerProvider, forking,
)

exporter = InMemorySpanExporter()
diag = Diagnostics()
provider = TracerProvider(diagnostics=diag, shutdown_on_exit=False)
provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay=3600, diagnostics=diag))
tracer = provider.get_tracer("t")
tracer.start_span("parent-queued").end()

libc = ctypes.CDLL(None, use_errno=True)
pid = libc.fork()  # C-level fork: os.register_at_fork callbacks do NOT run
if pid == 0:
    forking.after_fork_in_child()  # what our uWSGI post-fork hook calls
    forking.after_fork_in_child()  # twice in one child is harmless
    tracer.start_span("child").end()
    ok = provider.force_flush(10)
    names = sorted(s.name for s in exporter.get_finished_spans())
    snap = diag.snapshot()
    good = ok and names == ["child"] and snap["produced"] == 1 and snap["exported"] == 1
    os._exit(0 if good else 1)
_, status = os.waitpid(pid, 0)
assert provider.force_flush(10)
assert [s.name for s in exporter.get_finished_spans()] == ["parent-queued"]
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_after_fork_in_child_repairs_a_c_level_fork() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


UNHOOKED = r"""
import ctypes, os, sys
from telemetry_run.sdk import (
    BatchSpanProcessor, Diagnostics, InMemorySpanExporter, TracerProvider,
)

exporter = InMemorySpanExporter()
diag = Diagnostics()
provider = TracerProvider(diagnostics=diag, shutdown_on_exit=False)
provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay=3600, diagnostics=diag))
tracer = provider.get_tracer("t")
tracer.start_span("parent-exported").end()
assert provider.force_flush(10)

libc = ctypes.CDLL(None, use_errno=True)
pid = libc.fork()  # C-level fork, and nobody calls forking.after_fork_in_child()
if pid == 0:
    if sys.argv[1] == "spans":
        tracer.start_span("child-1").end()  # the first span finds the fork and repairs it
        tracer.start_span("child-2").end()
        ok = provider.force_flush(10)
        names = sorted(s.name for s in exporter.get_finished_spans())
        snap = diag.snapshot()
        good = ok and names == ["child-1", "child-2", "parent-exported"]
        good = good and snap["produced"] == 2 and snap["exported"] == 2
    else:
        # No worker thread was copied: nothing to wait for. Waiting for it anyway would run
        # into the hour's deadline, and the test's subprocess timeout would fail the test.
        provider.shutdown(3600)
        good = [s.name for s in exporter.get_finished_spans()] == ["parent-exported"]
    os._exit(0 if good else 1)
_, status = os.waitpid(pid, 0)
assert [s.name for s in exporter.get_finished_spans()] == ["parent-exported"]
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_c_level_fork_without_any_hook_is_repaired_at_its_first_span() -> None:
    result = subprocess.run(
        [sys.executable, "-c", UNHOOKED, "spans"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_shutdown_in_an_unrepaired_fork_does_not_wait_for_a_missing_worker() -> None:
    result = subprocess.run(
        [sys.executable, "-c", UNHOOKED, "shutdown"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# Another thread is inside an import (as an exporter's lazy import on its first export is) when
# the main thread forks. In the child that thread does not exist, but its module lock is still
# held: without the repair, the child's own import of the module waits forever (bounded here by
# faulthandler, which ends the child with a traceback instead).
IMPORT_IN_FLIGHT = r"""
import faulthandler, os, sys, threading

sys.path.insert(0, sys.argv[1])
entered, release = threading.Event(), threading.Event()
with open(os.path.join(sys.argv[1], "slow_module.py"), "w") as f:
    f.write(
        "import __main__\n"
        "__main__.entered.set()\n"
        "__main__.release.wait()\n"
        "done = True\n"
    )

import telemetry_run.sdk.forking  # registers the fork hooks, as any SDK import does

importer = threading.Thread(target=__import__, args=("slow_module",))
importer.start()
assert entered.wait(30)
pid = os.fork()
if pid == 0:
    faulthandler.dump_traceback_later(20, exit=True)  # a hang ends the child with exit 1
    release.set()  # this child's own import of the module runs to the end
    import slow_module
    os._exit(0 if slow_module.done else 2)
release.set()
importer.join()
import slow_module
assert slow_module.done
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_an_import_in_flight_on_another_thread_at_the_fork_does_not_hang_the_child(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_IN_FLIGHT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# The distro's own locks, held by another thread at the fork (an import firing hooks, an
# instrumentor patching): the child can take each of them.
DISTRO_LOCKS = r"""
import os, sys, threading
import telemetry_run._import_hooks as hooks
import telemetry_run.instrumentors._wrapt as wrapt_loader
import telemetry_run.instrumentors.base as base

patcher = base.Patcher()
held = {
    "import hooks": lambda: hooks._lock,
    "active instrumentors": lambda: base._active_lock,
    "wrapt loader": lambda: wrapt_loader._lock,
    "patcher": lambda: patcher._lock,
}
taken, release = threading.Event(), threading.Event()


def hold():
    for lock in held.values():
        lock().acquire()
    taken.set()
    release.wait()


threading.Thread(target=hold, daemon=True).start()
assert taken.wait(30)
pid = os.fork()
if pid == 0:
    stuck = [name for name, lock in held.items() if not lock().acquire(timeout=5)]
    print("stuck:", stuck, flush=True)
    os._exit(1 if stuck else 0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_the_distros_locks_are_fresh_in_a_forked_child() -> None:
    result = subprocess.run(
        [sys.executable, "-c", DISTRO_LOCKS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
