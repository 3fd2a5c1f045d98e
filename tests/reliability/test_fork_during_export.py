"""``os.fork()`` while the parent's exporter is in the middle of an export (its locks held,
its connection busy): the child neither deadlocks nor resends the parent's spans, and its own
spans arrive. Over gRPC the fork first waits for the call in flight (bounded: a call that does
not end is cancelled and its batch sent again), because gRPC's core skips its fork handlers
while one of its calls is in flight ("Other threads are currently calling into gRPC, skipping
fork() handlers") and such a child can abort in gRPC's poller; a child forked while our gRPC
work could not be stopped (the first export's ``import grpc``) never uses gRPC, and counts its
spans on its exit line. See the README's Servers section."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from telemetry_run.testing.otlp import OTLPReceiver
from tests.integration.apps import endpoint_env
from tests.integration.conftest import LAUNCHER

#: What gRPC logs when a process forks while one of its calls is in flight.
GRPC_SKIPPED_FORK_HANDLERS = "skipping fork() handlers"
EXIT_LINE = re.compile(r"telemetry-run: spans produced=(\d+) exported=(\d+) dropped=(\d+)")

APP = """
import os
import sys
import threading
import time

from telemetry_run import trace

tracer = trace.get_tracer("forker")
provider = trace.get_tracer_provider()
with tracer.start_as_current_span("warm-up"):
    pass
provider.force_flush(10)  # the first export imports grpc and connects: not the fork's subject
go = os.environ.get("FORKER_GO")
for _ in range(3000):  # until the test has set the receiver up for what follows (at most 30 s)
    if go is None or os.path.exists(go):
        break
    time.sleep(0.01)
for i in range(20):
    with tracer.start_as_current_span(f"parent-{i}"):
        pass
flushing = threading.Thread(target=provider.force_flush, args=(10,))
flushing.start()  # the receiver answers slowly: the export is in flight while we fork
time.sleep(0.3)
pid = os.fork()
if pid == 0:
    for i in range(5):
        with tracer.start_as_current_span(f"child-{i}"):
            pass
    sys.exit(0)  # the child's exit hook flushes its own spans
flushing.join()
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_fork_during_an_export(tmp_path: Path, protocol: str) -> None:
    app = tmp_path / "forker.py"
    app.write_text(textwrap.dedent(APP))
    with OTLPReceiver() as receiver:
        receiver.answer_slowly(1.0)
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base
        env = endpoint_env(
            endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_BSP_SCHEDULE_DELAY="3600000",
            TELEMETRY_RUN_SHUTDOWN_TIMEOUT="5000",
            GRPC_VERBOSITY="INFO",  # gRPC says when it skips its fork handlers
        )
        result = subprocess.run(
            [*LAUNCHER, sys.executable, str(app)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,  # a deadlocked child would hold its parent's waitpid until here
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "child exit 0\n", result.stderr
        receiver.wait_for_spans(26, timeout=20)
        spans = receiver.spans()  # the child's were sent before it exited
    names = Counter(span.name for span in spans)
    parents = Counter({f"parent-{i}": 1 for i in range(20)}) + Counter({"warm-up": 1})
    children = Counter({f"child-{i}": 1 for i in range(5)})
    assert names == parents + children, (names, result.stderr)
    # The fork waited for the call in flight: gRPC ran its fork handlers (it says when it skips
    # them, and a child forked then may abort in gRPC's poller).
    assert GRPC_SKIPPED_FORK_HANDLERS not in result.stderr, result.stderr


def test_a_fork_during_a_grpc_export_that_never_ends_cancels_it_and_the_child_counts(
    tmp_path: Path,
) -> None:
    """The receiver holds the parent's call far longer than a fork may wait: the fork cancels
    it and goes on, the parent sends the cancelled batch again, and the child (forked while gRPC
    may still be closing that channel) does not touch gRPC: its spans are counted."""
    app = tmp_path / "forker.py"
    app.write_text(textwrap.dedent(APP))
    go = tmp_path / "go"
    with OTLPReceiver() as receiver:
        env = endpoint_env(
            receiver.grpc_endpoint,
            FORKER_GO=str(go),
            GRPC_VERBOSITY="INFO",  # gRPC says when it skips its fork handlers
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_BSP_SCHEDULE_DELAY="3600000",
            OTEL_EXPORTER_OTLP_TIMEOUT="30000",
            TELEMETRY_RUN_SHUTDOWN_TIMEOUT="10000",
        )
        proc = subprocess.Popen(
            [*LAUNCHER, sys.executable, str(app)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            receiver.wait_for_attempts(1, timeout=30)  # the warm-up, answered at once
            receiver.hang()  # the parent's next call is in flight until released
            go.touch()
            # The parent's call, then its batch again: the fork cancelled the first.
            receiver.wait_for_attempts(3, timeout=30)
            receiver.release()
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            receiver.release()
            if proc.poll() is None:  # a hang: the parent and its child are stopped by PID
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr
        assert stdout == "child exit 0\n", stderr
        receiver.wait_for_spans(21, timeout=20)
        names = Counter(span.name for span in receiver.spans())
    assert {f"parent-{i}" for i in range(20)} <= set(names), (names, stderr)
    assert not any(name.startswith("child-") for name in names), names
    assert ("5", "0", "5") in EXIT_LINE.findall(stderr), stderr  # the child's, never silent
    assert GRPC_SKIPPED_FORK_HANDLERS not in stderr, stderr


# Forks in a loop while a second thread ends spans at full speed and the batch processor
# exports them in small batches to the receiver: at each fork, some lock of the SDK or the
# exporter (the queue's, the export's, the channel's, the diagnostics', a sampled-out span's
# id lock) is likely held by that thread. Each child makes spans of its own, flushes them and
# checks its own accounting; the parent reaps every child with a bound that only catches a
# hang (a hung child is killed and counted), keeping a few alive at a time.
LOOP_APP = """
import json
import os
import signal
import sys
import threading
import time

from telemetry_run import propagate, trace

FORKS, ALIVE, CHILD_SPANS, HANG_BOUND = (int(a) for a in sys.argv[1:5])
DELIVERED = sys.argv[5] == "delivered"  # else each span delivered or counted as dropped
tracer = trace.get_tracer("forker")
provider = trace.get_tracer_provider()
stop = threading.Event()
recorded = 0


def record():
    global recorded
    while not stop.is_set():
        with tracer.start_as_current_span("bg") as span:
            span.set_attribute("n", recorded)
            propagate.inject({})
        recorded += 1


def child(i):
    try:
        for j in range(CHILD_SPANS):
            with tracer.start_as_current_span(f"child-{i}-{j}"):
                propagate.inject({})
        flushed = provider.force_flush(30)
        snap = provider.diagnostics.snapshot()
        counts = (snap["produced"], snap["exported"], snap["dropped"])
        if DELIVERED:
            good = flushed and counts == (CHILD_SPANS, CHILD_SPANS, 0)
        else:
            good = counts[0] == CHILD_SPANS and counts[1] + counts[2] == CHILD_SPANS
        if not good:
            print(f"child {i}: flushed={flushed} {snap}", file=sys.stderr, flush=True)
    except BaseException as exc:
        print(f"child {i}: {exc!r}", file=sys.stderr, flush=True)
        good = False
    os._exit(0 if good else 1)


threading.Thread(target=record, daemon=True).start()
while recorded < 1000:
    time.sleep(0.01)  # the recording thread and the exports are at full speed
codes, hung, alive = [], 0, {}


def reap(block):
    global hung
    for pid, started in list(alive.items()):
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        if done:
            codes.append(os.waitstatus_to_exitcode(status))
            del alive[pid]
        elif time.monotonic() - started > HANG_BOUND:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            hung += 1
            del alive[pid]


for i in range(FORKS):
    while len(alive) >= ALIVE:
        reap(block=False)
        time.sleep(0.005)
    pid = os.fork()
    if pid == 0:
        child(i)
    alive[pid] = time.monotonic()
while alive:
    reap(block=False)
    time.sleep(0.01)
stop.set()
print(json.dumps({"codes": codes, "hung": hung, "recorded": recorded}), flush=True)
"""


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_forks_in_a_loop_while_a_thread_records_and_exports(tmp_path: Path, protocol: str) -> None:
    forks, alive, child_spans, hang_bound = 200, 4, 3, 60
    app = tmp_path / "fork_loop.py"
    app.write_text(textwrap.dedent(LOOP_APP))
    with OTLPReceiver() as receiver:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base
        env = endpoint_env(
            endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_BSP_SCHEDULE_DELAY="5",
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="64",
            OTEL_BSP_MAX_QUEUE_SIZE="256",  # full at times: the drop counter and its lock too
            OTEL_EXPORTER_OTLP_TIMEOUT="3000",  # a child's failing export ends in time
            TELEMETRY_RUN_SHUTDOWN_TIMEOUT="10000",
        )
        # A child forked during the first export's import of grpc never uses gRPC (see the
        # module docstring): there a child's spans are delivered or counted.
        mode = "accounted" if protocol == "grpc" else "delivered"
        args = [str(forks), str(alive), str(child_spans), str(hang_bound), mode]
        result = subprocess.run(
            [*LAUNCHER, sys.executable, str(app), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,  # only catches the parent hanging; each child has its own bound
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        expected = Counter({f"child-{i}-{j}": 1 for i in range(forks) for j in range(child_spans)})
        received = Counter(span.name for span in receiver.spans())
    assert summary["hung"] == 0, result.stderr[-3000:]
    assert summary["codes"] == [0] * forks, result.stderr[-3000:]
    assert summary["recorded"] > 1000
    # Every child's own spans arrived once (over gRPC: at most once, the others counted by
    # the child); no child sent its parent's queued spans.
    children = +(received - Counter({"bg": received["bg"]}))
    if protocol == "grpc":
        assert children | expected == expected, children - expected
    else:
        assert children == expected, (expected - children, children - expected)
    parent = EXIT_LINE.findall(result.stderr)
    if parent:  # the parent's line (written when it dropped spans): never more than it made
        # (a batch whose call timed out counts as export_failed yet may still arrive: the
        # receiver answers a call the sender gave up on, so exported is not an upper bound)
        assert received["bg"] <= int(parent[-1][0]), parent
