"""SIGTERM under the launcher keeps the application's semantics (issue 13, section 2).

Each app runs as a real process under ``telemetry-run``, exporting over OTLP/HTTP to the real
testing receiver with a schedule delay longer than the test: a span arrives only if the exit
path flushed it. Checked: the exit code the app would have without us, the app's own code after
its handler chained to ours, and the spans at the receiver.
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from telemetry_run.testing.otlp import OTLPReceiver, free_port
from tests.integration.conftest import LAUNCHER, PYTHON, clean_env
from tests.integration.test_launcher import EXIT_LINE

# The app's preamble: one span before SIGTERM, then wait for it. ``{handler}`` sets the app's
# own SIGTERM handling, if any.
APP = """
import os, signal, sys, time
from telemetry_run import trace

tracer = trace.get_tracer("app")
stopping = []  # a graceful drain: the app's handler asks the main loop to stop
{handler}
tracer.start_span("before-term").end()
print("ready", flush=True)
for _ in range(600):
    if stopping:
        tracer.start_span("draining").end()
        print("drained", flush=True)
        sys.exit(0)
    time.sleep(0.1)
print("not stopped", flush=True)
"""

CHAINING = """
prev = signal.getsignal(signal.SIGTERM)
def on_term(signum, frame):
    tracer.start_span("in-handler").end()
    if callable(prev):
        prev(signum, frame)
    print("after prev", flush=True)
    tracer.start_span("after-prev").end()
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
"""

NOT_CHAINING = """
def on_term(signum, frame):
    tracer.start_span("in-handler").end()
    print("closing the database", flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, on_term)
"""

# A handler that chains and then carries on: the flush must return, never kill.
CHAINING_AND_CARRYING_ON = """
prev = signal.getsignal(signal.SIGTERM)
def on_term(signum, frame):
    if callable(prev):
        prev(signum, frame)
    print("after prev", flush=True)
    stopping.append(signum)
signal.signal(signal.SIGTERM, on_term)
"""

IGNORING = "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"


def env_for(receiver: OTLPReceiver, **extra: str) -> dict[str, str]:
    return clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_base,
        OTEL_BSP_SCHEDULE_DELAY="60000",  # only the exit path can deliver
        **extra,
    )


def run_until_sigterm(app: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Start ``app`` under the launcher, SIGTERM it once it is ready, wait (bounded)."""
    with subprocess.Popen(
        [*LAUNCHER, PYTHON, app],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)  # only catches a hang
        finally:
            proc.kill()
    return proc.returncode, out, err


def write_app(tmp_path: Path, handler: str = "") -> str:
    path = tmp_path / "app.py"
    path.write_text(APP.format(handler=handler))
    return str(path)


def names(receiver: OTLPReceiver, count: int) -> list[str]:
    return sorted(span.name for span in receiver.wait_for_spans(count))


def test_no_handler_dies_by_sigterm_after_the_flush(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    code, _out, err = run_until_sigterm(write_app(tmp_path), env_for(otlp_receiver))
    assert code == -signal.SIGTERM, err
    assert names(otlp_receiver, 1) == ["before-term"]
    assert err == ""  # delivered: no exit line


def test_a_chaining_handler_keeps_its_exit_code_and_its_code_after_the_call(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    code, out, err = run_until_sigterm(write_app(tmp_path, CHAINING), env_for(otlp_receiver))
    assert code == 0, err  # Kubernetes sees 0, not 143
    assert "after prev" in out
    # The span made after our flush returned leaves through the exit's shutdown.
    assert names(otlp_receiver, 3) == ["after-prev", "before-term", "in-handler"]
    assert err == ""


def test_a_chaining_handler_that_carries_on_is_not_killed(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    app = write_app(tmp_path, CHAINING_AND_CARRYING_ON)
    code, out, err = run_until_sigterm(app, env_for(otlp_receiver))
    assert code == 0, err
    assert "after prev" in out
    assert "drained" in out  # the main loop ran on after the handler
    assert names(otlp_receiver, 2) == ["before-term", "draining"]


def test_a_handler_that_does_not_chain_keeps_its_exit_code(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    code, out, err = run_until_sigterm(write_app(tmp_path, NOT_CHAINING), env_for(otlp_receiver))
    assert code == 3, err
    assert "closing the database" in out
    assert names(otlp_receiver, 2) == ["before-term", "in-handler"]
    assert err == ""


def test_an_app_that_ignores_sigterm_still_ignores_it(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import signal, sys
            from telemetry_run import trace
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("ready", flush=True)
            sys.stdin.readline()  # the test writes a line after the SIGTERM
            trace.get_tracer("app").start_span("still-here").end()
            print("still here", flush=True)
            """
        )
    )
    with subprocess.Popen(
        [*LAUNCHER, PYTHON, str(app)],
        env=env_for(otlp_receiver),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate("go\n", timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert "still here" in out
    assert names(otlp_receiver, 1) == ["still-here"]


def test_sigterm_ignored_by_the_parent_is_left_ignored(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    # nohup-style: the launcher's process starts with SIGTERM ignored; we install nothing.
    app = tmp_path / "app.py"
    app.write_text(
        "import signal, sys\n"
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN, flush=True)\n"
    )
    # A small exec'ing parent sets SIG_IGN, not a preexec_fn: Python code between fork and exec
    # of this process, whose gRPC threads serve the receiver, can abort in gRPC's fork handling.
    ignore_then_exec = (
        "import os, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    result = subprocess.run(
        [PYTHON, "-c", ignore_then_exec, *LAUNCHER, PYTHON, str(app)],
        env=env_for(otlp_receiver),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize("chains", [True, False], ids=["chaining", "not-chaining"])
def test_a_handler_set_in_the_users_sitecustomize(
    otlp_receiver: OTLPReceiver, tmp_path: Path, chains: bool
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import signal, sys
            prev = signal.getsignal(signal.SIGTERM)
            def on_term(signum, frame):
                if {chains} and callable(prev):
                    prev(signum, frame)
                print("site handler done", flush=True)
                sys.exit(0)
            signal.signal(signal.SIGTERM, on_term)
            """
        )
    )
    env = env_for(otlp_receiver, PYTHONPATH=str(site))
    code, out, err = run_until_sigterm(write_app(tmp_path), env)
    assert code == 0, err
    assert "site handler done" in out
    assert names(otlp_receiver, 1) == ["before-term"]
    assert err == ""


def test_a_dead_collector_is_counted_and_the_exit_code_kept(tmp_path: Path) -> None:
    env = clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OTEL_BSP_SCHEDULE_DELAY="60000",
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="500",
    )
    code, _out, err = run_until_sigterm(write_app(tmp_path, CHAINING), env)
    assert code == 0, err
    match = EXIT_LINE.search(err)
    assert match is not None, err
    produced, exported, dropped = map(int, match.groups()[:3])
    assert (produced, exported, dropped) == (3, 0, 3)


STUCK_IN_C = """
import hashlib, logging, os, signal, sys
from telemetry_run import trace

class Slow(logging.Handler):
    def emit(self, record):
        woken, wake = os.pipe()
        os.set_blocking(wake, False)
        signal.set_wakeup_fd(wake)  # the signal's arrival, seen without a handler of the app's
        print("ready", flush=True)
        os.read(woken, 1)  # SIGTERM lands here, inside logging's handler lock: flush deferred
        # Then a long C call that never runs a signal handler (the GIL is released, no check).
        hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 10**9)
        print("not stopped", flush=True)

trace.get_tracer("app").start_span("before-term").end()
log = logging.getLogger("app")
log.addHandler(Slow())
log.warning("one line")
"""


def test_a_main_thread_stuck_in_c_still_ends_after_the_deadline(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(STUCK_IN_C)
    otlp_receiver.answer_slowly(1.0)  # SIGTERM is sent again once the main thread is in C
    env = env_for(otlp_receiver, TELEMETRY_RUN_SHUTDOWN_TIMEOUT="3000")
    code, out, err = run_until_sigterm(str(app), env)
    # The deferred flush ran on its thread and sent SIGTERM again; the main thread could not
    # run the handler, so the process ended as SIGTERM would have, after the deadline.
    assert code == 128 + signal.SIGTERM, err
    assert "not stopped" not in out
    assert names(otlp_receiver, 1) == ["before-term"]


# Forks children and sends each SIGTERM at once. Parent and child share one CPU, so the parent
# runs on after the fork and the signal lands before the child reaches CPython's after-fork
# (what a loaded machine does to a new Pool worker that ``Pool.terminate()`` then waits for).
FORK_THEN_TERMINATE = """
import os, signal, time, warnings
os.sched_setaffinity(0, {0})
codes = []
for _ in range(20):
    with warnings.catch_warnings():  # 3.12+: forking with threads running (ours) is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        time.sleep(3)  # a lost SIGTERM: the child ends by itself, with 0
        os._exit(0)
    os.kill(pid, signal.SIGTERM)
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(codes, flush=True)
"""


def test_a_sigterm_sent_while_the_child_is_being_forked_is_not_lost(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    # CPython clears a signal caught between fork() and its after-fork; with SIG_DFL the
    # kernel would have killed the child, and so must our handler. Fails 20/20 without the fix.
    app = tmp_path / "app.py"
    app.write_text(FORK_THEN_TERMINATE)
    result = subprocess.run(
        [*LAUNCHER, PYTHON, str(app)],
        env=env_for(otlp_receiver),
        capture_output=True,
        text=True,
        timeout=120,  # only catches a hang (20 lost signals take 60 s)
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str([-signal.SIGTERM] * 20), result.stdout
    assert result.stderr == ""


# SIGTERM whose C-level handler runs while the main thread is already waiting in C: what happens
# when it lands between a bytecode check and the start of a blocking call (``time.sleep``, a
# lock), or when another thread takes it. CPython then runs the Python handler only once the wait
# ends; with SIG_DFL the kernel would have ended the process at once. Here the signal is sent to
# a helper thread (so the main thread is surely not interrupted) while the main thread waits on
# a lock nobody releases: only our watch of the signal can end the process. ``{where}`` is
# "main" (the launched process itself) or "fork" (a child it forks with os.fork).
WAITING_IN_C = """
import os, signal, sys, threading, time, warnings
from telemetry_run import trace

def wait_forever():
    held = threading.Lock()
    held.acquire()
    held.acquire()  # nobody releases it: only a signal ends this wait

def signal_from_a_helper():
    main = threading.main_thread().ident

    def deliver():
        while sys._current_frames()[main].f_code.co_name != "wait_forever":
            time.sleep(0.01)
        time.sleep(0.2)  # into the C call (a run that signals earlier proves less, never fails)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=deliver, daemon=True).start()

trace.get_tracer("app").start_span("{where}-before-term").end()
if "{where}" == "fork":
    with warnings.catch_warnings():  # 3.12+: forking with threads running (ours) is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
        sys.exit(0)
signal_from_a_helper()
wait_forever()
"""


@pytest.mark.parametrize("where", ["main", "fork"])
def test_a_sigterm_taken_while_the_main_thread_waits_in_c_still_ends_the_process(
    otlp_receiver: OTLPReceiver, tmp_path: Path, where: str
) -> None:
    app = tmp_path / "app.py"
    app.write_text(WAITING_IN_C.replace("{where}", where))
    result = subprocess.run(
        [*LAUNCHER, PYTHON, str(app)],
        env=env_for(otlp_receiver),
        capture_output=True,
        text=True,
        timeout=60,  # only catches the hang: without the watch the wait never ends
        check=False,
    )
    if where == "main":
        assert result.returncode == -signal.SIGTERM, result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"child {-signal.SIGTERM}", result.stdout
    assert names(otlp_receiver, 1) == [f"{where}-before-term"]
    assert result.stderr == ""
