"""Work handed to threads, pools and other processes stays in the trace that handed it over (#16).

Each app runs under the launcher and exports over OTLP/HTTP to the real testing receiver; the
assertions are on the parent links the receiver got.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from telemetry_run.testing.otlp import OTLPReceiver
from tests.integration.conftest import LAUNCHER, PYTHON, clean_env

THREADS_APP = """
import asyncio, threading
from concurrent.futures import ThreadPoolExecutor
from telemetry_run import trace

tracer = trace.get_tracer("app")
released = threading.Event()

def work(name):
    tracer.start_span(name).end()

def late(name):
    released.wait(30)  # runs after the submitting span has ended
    work(name)

async def in_a_task(name):
    work(name)

async def in_asyncio():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, work, "run_in_executor")
    await asyncio.to_thread(work, "to_thread")
    await asyncio.create_task(in_a_task("task"))

with ThreadPoolExecutor(2) as pool:
    with tracer.start_as_current_span("submitter"):
        thread = threading.Thread(target=work, args=("thread",))
        thread.start()
        thread.join()
        pool.submit(work, "submit").result()
        list(pool.map(work, ["map-1", "map-2"]))
        outliving = pool.submit(late, "outlives-its-parent")
        asyncio.run(in_asyncio())
    released.set()
    outliving.result()
    work("after")  # submitted outside any span: a root
"""

THREAD_SPANS = [
    "thread",
    "submit",
    "map-1",
    "map-2",
    "run_in_executor",
    "to_thread",
    "task",
    "outlives-its-parent",
]

PROCESSES_APP = """
import multiprocessing, sys
from concurrent.futures import ProcessPoolExecutor
from telemetry_run import trace

tracer = trace.get_tracer("app")

def work(name):
    if name:
        tracer.start_span(name).end()
    return name

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    # Workers started before the span: a forked one cannot have inherited it.
    executor = ProcessPoolExecutor(2, mp_context=context)
    executor.submit(work, "").result()
    pool = context.Pool(2)
    with tracer.start_as_current_span("submitter"):
        executor.submit(work, "executor-submit").result()
        list(executor.map(work, ["executor-map"]))
        pool.apply_async(work, ("pool-apply-async",)).get(60)
        pool.map(work, ["pool-map"])
        list(pool.imap_unordered(work, ["pool-imap-unordered"]))
        child = context.Process(target=work, args=("process",))
        child.start()
        child.join()
    executor.shutdown()
    pool.close()
    pool.join()
    child = context.Process(target=work, args=("process-outside-a-span",))
    child.start()
    child.join()
"""

PROCESS_SPANS = [
    "executor-submit",
    "executor-map",
    "pool-apply-async",
    "pool-map",
    "pool-imap-unordered",
    "process",
]


def _run(tmp_path: Path, app: str, receiver: OTLPReceiver, *args: str, **env: str) -> None:
    path = tmp_path / "app.py"
    path.write_text(app)
    result = subprocess.run(
        [*LAUNCHER, PYTHON, str(path), *args],
        env=clean_env(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_base,
            # Each process exports at its exit: a fork never lands in an export (the forked
            # child of a lazy import in progress on the batch thread is issue 13's).
            OTEL_BSP_SCHEDULE_DELAY="60000",
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=120,  # only catches a hang
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def test_threads_pools_and_executors_run_the_work_as_children_of_the_submitter(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    _run(tmp_path, THREADS_APP, otlp_receiver)
    spans = {span.name: span for span in otlp_receiver.wait_for_spans(len(THREAD_SPANS) + 2)}
    submitter = spans.pop("submitter")
    assert spans.pop("after").parent_span_id == b""
    assert sorted(spans) == sorted(THREAD_SPANS)
    for name, span in spans.items():
        assert (span.trace_id, span.parent_span_id) == (submitter.trace_id, submitter.span_id), name


def test_disabling_threading_by_name_leaves_threads_without_a_parent(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    _run(tmp_path, THREADS_APP, otlp_receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="threading")
    spans = {span.name: span for span in otlp_receiver.wait_for_spans(len(THREAD_SPANS) + 2)}
    orphans = {name for name, span in spans.items() if span.parent_span_id == b""}
    # asyncio copies the context itself, for tasks and to_thread: those keep their parent.
    assert orphans == {
        *("thread", "submit", "map-1", "map-2", "run_in_executor", "outlives-its-parent"),
        *("after", "submitter"),
    }


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_tasks_of_other_processes_are_children_of_the_submitter(
    otlp_receiver: OTLPReceiver, tmp_path: Path, method: str
) -> None:
    _run(tmp_path, PROCESSES_APP, otlp_receiver, method)
    spans = {span.name: span for span in otlp_receiver.wait_for_spans(len(PROCESS_SPANS) + 2)}
    submitter = spans.pop("submitter")
    assert spans.pop("process-outside-a-span").parent_span_id == b""
    assert sorted(spans) == sorted(PROCESS_SPANS)
    for name, span in spans.items():
        assert (span.trace_id, span.parent_span_id) == (submitter.trace_id, submitter.span_id), name
