"""Prints log records to a stream, one line each (``OTEL_LOGS_EXPORTER=console``), in the
style of the console span exporter's flat lines."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Final

from telemetry_run.sdk.exporters import SUCCESS, ExportResult
from telemetry_run.sdk.exporters.console import _one_line

if TYPE_CHECKING:
    from telemetry_run.sdk.logs import LogData

__all__ = ["ConsoleLogExporter", "format_log_line"]

#: Attributes every record carries; the line shows the rest.
_ALWAYS: Final = frozenset(("code.file.path", "code.function.name", "code.line.number"))
_EXCEPTION: Final = frozenset(("exception.stacktrace",))


def format_log_line(record: LogData) -> str:
    """``time severity scope 'body' trace/span ids {attributes}`` on one line (the exception's
    type and message among the attributes; its stack trace left out)."""
    import datetime

    when = datetime.datetime.fromtimestamp(record.time / 1e9, tz=datetime.UTC)
    parts = [
        when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        record.severity_text or "-",
        _one_line(record.scope or "-"),
        repr(record.body),
        f"trace={record.trace_id:032x} span={record.span_id:016x}",
    ]
    shown = {
        key: value
        for key, value in record.attributes.items()
        if key not in _ALWAYS and key not in _EXCEPTION
    }
    if shown:
        import json

        parts.append(json.dumps(shown, default=str, ensure_ascii=False))
    return " ".join(parts)


class ConsoleLogExporter:
    """Writes each log record as one line to ``out`` (stdout by default)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out  # one worker thread writes: no lock a fork could inherit held

    def export(self, records: Sequence[LogData], *, deadline: float) -> ExportResult:
        text = "".join(format_log_line(record) + "\n" for record in records)
        out = self._out if self._out is not None else sys.stdout
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError) as exc:  # a closed or broken stdout, or its encoding
            return ExportResult(False, error=f"console write failed: {exc}")
        return SUCCESS

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        pass
