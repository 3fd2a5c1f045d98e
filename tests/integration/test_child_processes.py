"""multiprocessing children flush at their end, whatever the start method (issue 13, section 3).

Forked children (``fork``, ``forkserver``) leave through ``os._exit``: no ``atexit``. Spawned
ones are new interpreters bootstrapped from the environment. Each app runs under the launcher
and exports over OTLP/HTTP to the real testing receiver with a schedule delay longer than the
test, so a child's span arrives only if the child's own exit path flushed it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from telemetry_run.testing.otlp import OTLPReceiver, free_port
from tests.integration.conftest import LAUNCHER, PYTHON, clean_env
from tests.integration.test_launcher import EXIT_LINE

APP = """
import multiprocessing, os, signal, sys, threading, time, warnings
from concurrent.futures import ProcessPoolExecutor
from telemetry_run import trace

def work(name):
    if name:
        trace.get_tracer("child").start_span(name).end()
    return name

def work_until_terminated(name, ready):
    work(name)
    ready.set()
    time.sleep(60)

def wait_forever(lock):
    lock.acquire()  # the parent holds it: only a signal ends this wait

def work_then_wait(name, held):
    # What a Pool worker meets when Pool.terminate() keeps the task queue's lock: the main
    # thread waits in C, and SIGTERM's C handler runs on another thread (as when the signal
    # lands just before the wait begins), so the main thread is never interrupted.
    work(name)
    main = threading.get_ident()

    def deliver():
        while sys._current_frames()[main].f_code.co_name != "wait_forever":
            time.sleep(0.01)
        time.sleep(0.2)  # into the C call (a run that signals earlier proves less, never fails)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=deliver).start()
    wait_forever(held)

def terminate_a_fork_then_work(name):
    # A process this child forks shares what the child inherited: its SIGTERM is its own.
    started_r, started_w = os.pipe()
    with warnings.catch_warnings():  # 3.12+: forking with threads running (ours) is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os.write(started_w, b"1")
        time.sleep(60)
        os._exit(0)
    os.read(started_r, 1)
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    time.sleep(0.2)  # room for a wrongly woken watch to act (never a failure on its own)
    work(name)

if __name__ == "__main__":
    method, kind = sys.argv[1], sys.argv[2]
    print("parent", os.getpid(), flush=True)
    context = multiprocessing.get_context(method)
    names = [f"{kind}-{method}-{i}" for i in range(3)] if kind != "idle-pool" else [""] * 4
    if kind == "process":
        children = [context.Process(target=work, args=(name,)) for name in names]
        for child in children:
            child.start()
        for child in children:
            child.join()
        print("exit codes", [child.exitcode for child in children], flush=True)
    elif kind == "terminate":  # Process.terminate(): SIGTERM to a busy child
        children = []
        for name in names:
            ready = context.Event()
            child = context.Process(target=work_until_terminated, args=(name, ready))
            child.start()
            ready.wait(30)
            children.append(child)
        for child in children:
            child.terminate()
        for child in children:
            child.join()
        print("exit codes", [child.exitcode for child in children], flush=True)
    elif kind == "blocked":  # SIGTERM while the main thread waits in C, on another thread
        held = context.Lock()
        held.acquire()
        children = [context.Process(target=work_then_wait, args=(n, held)) for n in names]
        for child in children:
            child.start()
        for child in children:
            child.join()
        print("exit codes", [child.exitcode for child in children], flush=True)
    elif kind == "forks":  # each child forks a process and terminates it
        children = [context.Process(target=terminate_a_fork_then_work, args=(n,)) for n in names]
        for child in children:
            child.start()
        for child in children:
            child.join()
        print("exit codes", [child.exitcode for child in children], flush=True)
    elif kind == "executor":  # the workers return from their loop: os._exit(0)
        with ProcessPoolExecutor(2, mp_context=context) as executor:
            print(sorted(executor.map(work, names)), flush=True)
    else:  # Pool.__exit__ terminates the workers: SIGTERM
        pool = context.Pool(2)
        print(sorted(pool.map(work, names)), flush=True)
        started = time.monotonic()
        pool.terminate()
        pool.join()
        print(f"terminate took {time.monotonic() - started:.3f}", flush=True)
"""

METHODS = ["fork", "spawn", "forkserver"]
KINDS = ["process", "terminate", "pool", "executor"]


def run_app(tmp_path: Path, method: str, kind: str, **env: str) -> subprocess.CompletedProcess[str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    return subprocess.run(
        [*LAUNCHER, PYTHON, str(app), method, kind],
        env=clean_env(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_BSP_SCHEDULE_DELAY="60000",  # only a child's exit path can deliver
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=120,  # only catches a hang
        check=False,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_each_childs_spans_reach_the_receiver(
    otlp_receiver: OTLPReceiver, tmp_path: Path, method: str, kind: str
) -> None:
    result = run_app(tmp_path, method, kind, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_base)
    assert result.returncode == 0, result.stderr
    if kind == "process":
        assert "exit codes [0, 0, 0]" in result.stdout
    if kind == "terminate":  # died by SIGTERM, as without us, after the flush
        assert "exit codes [-15, -15, -15]" in result.stdout
    expected = [f"{kind}-{method}-{i}" for i in range(3)]
    assert sorted(span.name for span in otlp_receiver.wait_for_spans(3)) == expected
    assert result.stderr == ""  # everything delivered: no exit line, nothing of ours failed
    # Exported by the children that made them, not by the parent.
    parent = re.search(r"parent (\d+)", result.stdout)
    assert parent is not None
    assert int(parent.group(1)) not in exporting_pids(otlp_receiver)


@pytest.mark.parametrize("method", METHODS)
def test_a_child_waiting_in_c_still_flushes_and_dies_by_sigterm(
    otlp_receiver: OTLPReceiver, tmp_path: Path, method: str
) -> None:
    # CPython runs a Python handler only in the main thread, between bytecodes: a child whose
    # main thread waits in C when SIGTERM is handled elsewhere would wait forever (run_app's
    # timeout fails the test), where SIG_DFL would have killed it.
    result = run_app(
        tmp_path, method, "blocked", OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_base
    )
    assert result.returncode == 0, result.stderr
    assert "exit codes [-15, -15, -15]" in result.stdout, result.stdout  # as without us
    expected = [f"blocked-{method}-{i}" for i in range(3)]
    assert sorted(span.name for span in otlp_receiver.wait_for_spans(3)) == expected
    assert result.stderr == ""


@pytest.mark.parametrize("method", METHODS)
def test_a_process_forked_by_a_child_is_terminated_alone(
    otlp_receiver: OTLPReceiver, tmp_path: Path, method: str
) -> None:
    result = run_app(tmp_path, method, "forks", OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_base)
    assert result.returncode == 0, result.stderr
    assert "exit codes [0, 0, 0]" in result.stdout, result.stdout  # the children lived on
    expected = [f"forks-{method}-{i}" for i in range(3)]
    assert sorted(span.name for span in otlp_receiver.wait_for_spans(3)) == expected
    assert result.stderr == ""


def exporting_pids(receiver: OTLPReceiver) -> set[int]:
    return {
        attribute.value.int_value
        for request in receiver.requests
        for resource_spans in request.request.resource_spans
        for attribute in resource_spans.resource.attributes
        if attribute.key == "process.pid"
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_childs_undelivered_spans_are_on_its_exit_line(
    tmp_path: Path, method: str, kind: str
) -> None:
    result = run_app(
        tmp_path,
        method,
        kind,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",  # nobody listens
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="300",
    )
    assert result.returncode == 0, result.stderr
    lines = [tuple(map(int, m.groups()[:3])) for m in EXIT_LINE.finditer(result.stderr)]
    # One line per child that made spans (a pool worker may have made more than one); the
    # parent made none and prints none. Every span produced is counted as dropped.
    assert lines, result.stderr
    assert all(exported == 0 and produced == dropped for produced, exported, dropped in lines), (
        result.stderr
    )
    assert sum(produced for produced, _, _ in lines) == 3, result.stderr


@pytest.mark.parametrize("method", METHODS)
def test_pool_terminate_stays_prompt_when_the_workers_have_nothing_queued(
    otlp_receiver: OTLPReceiver, tmp_path: Path, method: str
) -> None:
    otlp_receiver.hang()  # a flush would wait for the whole (long) shutdown timeout
    # A worker that started a flush would wait out the 600 s shutdown timeout, far past
    # run_app's 120 s subprocess timeout, which then fails the test.
    result = run_app(
        tmp_path,
        method,
        "idle-pool",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_base,
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="600000",
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"terminate took ([\d.]+)", result.stdout), result.stdout
    # No worker started a flush: none printed an exit line or a warning about the collector.
    assert result.stderr == ""


def test_pool_terminate_is_bounded_by_the_shutdown_timeout_when_the_collector_hangs(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    otlp_receiver.hang()
    result = run_app(
        tmp_path,
        "fork",
        "pool",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_base,
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="1000",
    )
    otlp_receiver.release()
    assert result.returncode == 0, result.stderr
    # The receiver hangs until released after the run: a worker whose flush ignored the 1 s
    # shutdown timeout would hold the pool past run_app's 120 s timeout, which fails the test.
    assert re.search(r"terminate took ([\d.]+)", result.stdout), result.stdout
    lines = [tuple(map(int, m.groups()[:3])) for m in EXIT_LINE.finditer(result.stderr)]
    assert sum(produced for produced, _, _ in lines) == 3, result.stderr
    assert all(exported == 0 and produced == dropped for produced, exported, dropped in lines), (
        result.stderr
    )


BILLIARD_APP = """
import sys
import billiard
from telemetry_run import trace

def work(name):
    trace.get_tracer("child").start_span(name).end()
    return name

if __name__ == "__main__":
    pool = billiard.Pool(2)
    print(sorted(pool.map(work, [f"billiard-{i}" for i in range(3)])), flush=True)
    if sys.argv[1] == "close":
        pool.close()  # the workers return from their loop
    else:
        pool.terminate()  # SIGTERM: billiard's own handler, sys.exit
    pool.join()
"""


@pytest.mark.parametrize("stop", ["close", "terminate"])
def test_billiard_pool_workers_flush_before_their_os_exit(
    otlp_receiver: OTLPReceiver, tmp_path: Path, stop: str
) -> None:
    pytest.importorskip("billiard")
    app = tmp_path / "app.py"
    app.write_text(BILLIARD_APP)
    result = subprocess.run(
        [*LAUNCHER, PYTHON, str(app), stop],
        env=clean_env(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_base,
            OTEL_BSP_SCHEDULE_DELAY="60000",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    spans = otlp_receiver.wait_for_spans(3)
    assert sorted(span.name for span in spans) == [f"billiard-{i}" for i in range(3)]
    assert result.stderr == ""
