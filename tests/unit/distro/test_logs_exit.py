"""The exit hook with logs export on: queued log records are delivered within the one exit
deadline, a multiprocessing child's pending records count as pending work, the exit line reports
log records apart from spans, and a forked child never exports its parent's queued records."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import pytest

from telemetry_run.exit import ExitHook, format_exit_line
from telemetry_run.sdk.diagnostics import Diagnostics
from telemetry_run.sdk.exporters import SUCCESS, ExportResult
from telemetry_run.sdk.logs import LogData
from telemetry_run.sdk.logs.processor import BatchLogRecordProcessor
from telemetry_run.sdk.logs.provider import LoggerProvider
from telemetry_run.sdk.resources import Resource
from telemetry_run.sdk.trace.provider import TracerProvider
from tests.unit.sdk.scripts import run_script


class Kept:
    def __init__(self, result: ExportResult = SUCCESS) -> None:
        self.bodies: list[str] = []
        self.result = result

    def export(self, records: Sequence[LogData], *, deadline: float) -> ExportResult:
        self.bodies += [record.body for record in records]
        return self.result

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        pass


def _record(body: str, resource: Resource) -> LogData:
    return LogData(
        time=1,
        observed_time=1,
        severity_number=9,
        severity_text="INFO",
        body=body,
        scope="app",
        resource=resource,
    )


def _hook(exporter: Kept) -> tuple[ExitHook, LoggerProvider, TracerProvider, io.StringIO]:
    provider = TracerProvider(diagnostics=Diagnostics(), shutdown_on_exit=False)
    logs = LoggerProvider(Resource({}), Diagnostics(noun="log record"))
    logs.add_log_record_processor(
        BatchLogRecordProcessor(exporter, schedule_delay=3600.0, diagnostics=logs.diagnostics)
    )
    err = io.StringIO()
    hook = ExitHook(provider, provider.diagnostics, timeout=5.0, err=err, logs=logs)
    return hook, logs, provider, err


def test_queued_records_are_delivered_at_exit_and_nothing_is_printed() -> None:
    exporter = Kept()
    hook, logs, _, err = _hook(exporter)
    logs.emit(_record("queued", logs.resource))
    hook.flush()
    assert exporter.bodies == ["queued"]
    assert err.getvalue() == ""  # everything delivered: no line


def test_a_child_with_records_pending_flushes_them() -> None:
    exporter = Kept()
    hook, logs, provider, _ = _hook(exporter)
    logs.emit(_record("from the child", logs.resource))
    hook.flush_child()
    assert exporter.bodies == ["from the child"]
    assert provider.is_shutdown


def test_undelivered_records_print_the_line_with_a_logs_part() -> None:
    hook, logs, _, err = _hook(Kept(ExportResult(False, error="refused")))
    for n in range(3):
        logs.emit(_record(f"r{n}", logs.resource))
    hook.flush()
    (line,) = err.getvalue().splitlines()
    assert line.startswith("telemetry-run: spans produced=0 exported=0 dropped=0 ")
    assert line.endswith(
        " logs produced=3 exported=0 dropped=3 "
        "(queue_full=0, export_failed=3, rejected=0, shutdown=0)"
    )


def test_without_logs_the_line_is_as_before() -> None:
    counts = Diagnostics().snapshot()
    assert format_exit_line(counts).endswith("invalid_attributes=0")
    assert " logs " not in format_exit_line(counts)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork is not available")
def test_a_forked_child_exports_its_own_records_never_its_parents() -> None:
    script = textwrap.dedent(
        """
        import os, sys
        from telemetry_run.sdk.diagnostics import Diagnostics
        from telemetry_run.sdk.exporters import SUCCESS
        from telemetry_run.sdk.logs import LogData
        from telemetry_run.sdk.logs.processor import BatchLogRecordProcessor
        from telemetry_run.sdk.logs.provider import LoggerProvider
        from telemetry_run.sdk.resources import Resource

        class Printing:
            def export(self, records, *, deadline):
                for record in records:
                    print(os.getpid(), record.body, flush=True)
                return SUCCESS
            def force_flush(self, *, deadline):
                return True
            def shutdown(self, *, deadline):
                pass

        logs = LoggerProvider(Resource({}), Diagnostics(noun="log record"))
        logs.add_log_record_processor(
            BatchLogRecordProcessor(Printing(), schedule_delay=3600.0, diagnostics=logs.diagnostics)
        )
        def emit(body):
            logs.emit(LogData(time=1, observed_time=1, severity_number=9, severity_text="INFO",
                              body=body, scope="app", resource=logs.resource))
        emit("parent-queued")
        pid = os.fork()
        if pid == 0:
            emit("child-made")
            logs.shutdown(5.0)
            counts = logs.diagnostics.snapshot()
            print("child", counts["produced"], counts["exported"], flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        logs.shutdown(5.0)
        counts = logs.diagnostics.snapshot()
        print("parent", os.getpid(), counts["produced"], counts["exported"], flush=True)
        """
    )
    out, err, code = run_script(script, timeout=60)
    assert code == 0, err
    lines = out.splitlines()
    parent_pid = lines[-1].split()[1]
    exported = [line.split(" ", 1) for line in lines if "-" in line]
    child = [body for pid, body in exported if pid != parent_pid]
    parent = [body for pid, body in exported if pid == parent_pid]
    assert child == ["child-made"]
    assert parent == ["parent-queued"]
    assert "child 1 1" in lines
    assert lines[-1].endswith(" 1 1")
