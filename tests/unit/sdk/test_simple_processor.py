"""SimpleSpanProcessor: synchronous export at span end, suppressed, counted, shut down once."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from telemetry_run.sdk import (
    Decision,
    Diagnostics,
    ExportResult,
    ReadableSpan,
    Resource,
    SimpleSpanProcessor,
    TracerProvider,
)
from telemetry_run.sdk.context import is_suppressed
from telemetry_run.sdk.diagnostics import InternalError
from telemetry_run.sdk.trace import Tracer
from telemetry_run.sdk.trace.sampling import StaticSampler
from tests.unit.sdk.scripts import run_script


class Exporter:
    def __init__(self, result: ExportResult | None = None, error: Exception | None = None):
        self.names: list[str] = []
        self.suppressed: list[bool] = []
        self.threads: list[threading.Thread] = []
        self.calls: list[tuple[float, float]] = []  # (monotonic time of the call, deadline)
        self.result = result if result is not None else ExportResult(True)
        self.error = error
        self.shutdown_calls = 0
        self.force_flush_calls = 0

    def export(self, spans: Sequence[ReadableSpan], *, deadline: float) -> ExportResult:
        self.calls.append((time.monotonic(), deadline))
        self.names += [s.name for s in spans]
        self.suppressed.append(is_suppressed())
        self.threads.append(threading.current_thread())
        if self.error is not None:
            raise self.error
        return self.result

    def force_flush(self, *, deadline: float) -> bool:
        self.force_flush_calls += 1
        return True

    def shutdown(self, *, deadline: float) -> None:
        self.shutdown_calls += 1


def make(
    diagnostics: Diagnostics,
    exporter: Exporter,
    *,
    sampler: StaticSampler | None = None,
    **kw: float,
) -> tuple[TracerProvider, SimpleSpanProcessor, Tracer]:
    provider = TracerProvider(
        Resource({"service.name": "ssp-test"}),
        sampler=sampler,
        diagnostics=diagnostics,
        shutdown_on_exit=False,
    )
    processor = SimpleSpanProcessor(exporter, diagnostics=diagnostics, **kw)
    provider.add_span_processor(processor)
    return provider, processor, provider.get_tracer("ssp")


def test_each_span_is_exported_synchronously_when_it_ends(diagnostics: Diagnostics) -> None:
    exporter = Exporter()
    _, _, tracer = make(diagnostics, exporter)
    span = tracer.start_span("one")
    assert exporter.names == []
    span.end()
    assert exporter.names == ["one"]  # before end() returned: no flush, no thread
    assert exporter.threads == [threading.current_thread()]
    with tracer.start_as_current_span("two"):
        pass
    assert exporter.names == ["one", "two"]
    counts = diagnostics.snapshot()
    assert counts["produced"] == counts["exported"] == 2
    assert counts["dropped"] == 0


def test_export_runs_with_instrumentation_suppressed_and_restores_the_context(
    diagnostics: Diagnostics,
) -> None:
    exporter = Exporter()
    _, _, tracer = make(diagnostics, exporter)
    assert not is_suppressed()
    tracer.start_span("s").end()
    assert exporter.suppressed == [True]
    assert not is_suppressed()  # the application's context is left as it was


def test_the_exporter_gets_a_deadline_of_the_export_timeout(diagnostics: Diagnostics) -> None:
    exporter = Exporter()
    _, _, tracer = make(diagnostics, exporter, export_timeout=7.0)
    tracer.start_span("s").end()
    ((called_at, deadline),) = exporter.calls
    assert called_at < deadline <= called_at + 7.0


def test_a_failed_result_is_counted_as_export_failed(diagnostics: Diagnostics) -> None:
    _, _, tracer = make(diagnostics, Exporter(ExportResult(False, error="no")))
    tracer.start_span("a").end()
    tracer.start_span("b").end()
    counts = diagnostics.snapshot()
    assert counts["export_failed"] == 2
    assert counts["exported"] == 0
    assert counts["produced"] == counts["exported"] + counts["dropped"]


def test_rejected_spans_are_counted(diagnostics: Diagnostics) -> None:
    _, _, tracer = make(diagnostics, Exporter(ExportResult(True, rejected=1)))
    tracer.start_span("a").end()
    counts = diagnostics.snapshot()
    assert counts["rejected"] == 1
    assert counts["exported"] == 0
    assert counts["produced"] == counts["exported"] + counts["dropped"]


@pytest.mark.internal_errors
def test_an_exporter_that_raises_is_contained(diagnostics: Diagnostics) -> None:
    errors: list[InternalError] = []
    diagnostics.on_internal_error = errors.append
    boom = ValueError("boom")
    _, _, tracer = make(diagnostics, Exporter(error=boom))
    tracer.start_span("a").end()  # does not raise into the application
    assert [(e.where, e.exception) for e in errors] == [("Exporter.export", boom)]
    assert diagnostics.snapshot()["export_failed"] == 1
    assert not is_suppressed()


def test_record_only_spans_are_not_exported(diagnostics: Diagnostics) -> None:
    exporter = Exporter()
    _, _, tracer = make(diagnostics, exporter, sampler=StaticSampler(Decision.RECORD_ONLY))
    span = tracer.start_span("s")
    assert span.is_recording()
    span.end()
    assert exporter.names == []
    assert diagnostics.snapshot()["produced"] == 0


def test_shutdown_is_idempotent_and_force_flush_reaches_the_exporter(
    diagnostics: Diagnostics,
) -> None:
    exporter = Exporter()
    provider, processor, _ = make(diagnostics, exporter)
    assert provider.force_flush(timeout=5)
    assert exporter.force_flush_calls == 1
    provider.shutdown(timeout=5)
    processor.shutdown(deadline=time.monotonic() + 5)
    provider.shutdown(timeout=5)
    assert exporter.shutdown_calls == 1


def test_spans_ended_after_shutdown_are_counted_as_shutdown(diagnostics: Diagnostics) -> None:
    exporter = Exporter()
    _, processor, tracer = make(diagnostics, exporter)
    tracer.start_span("before").end()
    processor.shutdown(deadline=time.monotonic() + 5)
    tracer.start_span("after").end()
    assert exporter.names == ["before"]
    counts = diagnostics.snapshot()
    assert counts["shutdown"] == 1
    assert counts["exported"] == 1
    assert counts["produced"] == 2


def test_concurrent_span_ends_are_all_exported_once(diagnostics: Diagnostics) -> None:
    exporter = Exporter()
    _, _, tracer = make(diagnostics, exporter)

    def produce(i: int) -> None:
        for j in range(300):
            tracer.start_span(f"{i}-{j}").end()

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(exporter.names) == sorted(f"{i}-{j}" for i in range(6) for j in range(300))
    assert diagnostics.snapshot()["exported"] == 1800


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    from telemetry_run.sdk import (
        Diagnostics, ExportResult, Resource, SimpleSpanProcessor, TracerProvider,
    )

    out = sys.argv[1]
    entered, release = threading.Event(), threading.Event()

    class FileExporter:
        def export(self, spans, *, deadline):
            if spans[0].name == "hang":
                entered.set()
                release.wait()
            with open(out, "a") as f:
                f.write("".join(f"{os.getpid()} {s.name}\\n" for s in spans))
            return ExportResult(True)

        def force_flush(self, *, deadline):
            return True

        def shutdown(self, *, deadline):
            pass

    diag = Diagnostics()
    provider = TracerProvider(
        Resource({"service.name": "fork"}), diagnostics=diag, shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(), diagnostics=diag))
    tracer = provider.get_tracer("fork")

    # Another thread is inside the processor's export when the process forks.
    hanging = threading.Thread(target=lambda: tracer.start_span("hang").end())
    hanging.start()
    assert entered.wait(20)
    pid = os.fork()
    if pid == 0:
        try:
            tracer.start_span("child").end()
        finally:
            os._exit(0)
    release.set()
    hanging.join()
    tracer.start_span("parent").end()
    _, status = os.waitpid(pid, 0)
    print(os.getpid(), pid, os.waitstatus_to_exitcode(status))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_during_an_export_can_still_export(tmp_path: Path) -> None:
    # Without a fresh lock in the child, "child" waits forever for the parent's exporting thread.
    out = tmp_path / "exported.txt"
    stdout, stderr, returncode = run_script(FORK_SCRIPT, str(out), timeout=30)
    assert returncode == 0, stderr
    parent_pid, child_pid, child_exit = map(int, stdout.split())
    assert child_exit == 0
    lines = sorted(out.read_text().splitlines())
    assert lines == sorted([f"{parent_pid} hang", f"{parent_pid} parent", f"{child_pid} child"])
