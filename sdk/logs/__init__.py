"""Logs export: ``logging`` records shipped as OTLP log records, beside the spans.

``LogData`` is one captured record: what the OTLP ``LogRecord`` message carries, taken on the
application's thread when the record was made (its message formatted, the ids of the span that
was current then), so the export later, on the worker thread, sees what the application saw.
The pipeline reuses the span machinery: a batch processor with its own bounded queue
(``processor.py``) and the OTLP transports (``exporters/otlp/*_logs.py``); ``bridge.py`` hooks it
into ``logging``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from telemetry_run.sdk.diagnostics import Diagnostics
    from telemetry_run.sdk.resources import Resource

__all__ = ["LogData", "get_log_diagnostics", "severity_number"]

_diagnostics: Diagnostics | None = None


def get_log_diagnostics() -> Diagnostics:
    """The process-wide counters of log records (apart from the spans'), shared by the logs
    pipeline the bootstrap builds and its exporters."""
    global _diagnostics
    if _diagnostics is None:
        from telemetry_run.sdk.diagnostics import Diagnostics

        _diagnostics = Diagnostics(noun="log record")
    return _diagnostics


def _severities() -> tuple[int, ...]:
    """OTLP SeverityNumber by Python level 0..53 (the logs data model's appendix, as the
    OpenTelemetry SDK's LoggingHandler maps them): DEBUG 10 is DEBUG (5), INFO 20 is INFO (9),
    WARNING 30 is WARN (13), ERROR 40 is ERROR (17), CRITICAL 50 is FATAL (21); the three
    levels above each take the next three numbers, the rest of the decade the fourth. Custom
    levels 1-9 (a TRACE level, often 5) are TRACE (1); NOTSET (0) is UNSPECIFIED."""
    table = [0] + [1] * 9
    for base in (5, 9, 13, 17, 21):
        table += [base, base + 1, base + 2] + [base + 3] * 7
    return tuple(table[:54])


_SEVERITY: Final = _severities()


def severity_number(levelno: int) -> int:
    """The OTLP SeverityNumber of a ``logging`` level number."""
    if levelno <= 0:
        return 0
    if levelno > 53:
        return 24  # FATAL4
    return _SEVERITY[levelno]


class LogData:
    """One log record, as exported: times in ns since the epoch, ids as integers (0: none)."""

    __slots__ = (
        "attributes",
        "body",
        "dropped_attributes",
        "observed_time",
        "resource",
        "scope",
        "severity_number",
        "severity_text",
        "span_id",
        "time",
        "trace_flags",
        "trace_id",
    )

    def __init__(  # positional on the application's thread (cheaper), keywords elsewhere
        self,
        time: int,
        observed_time: int,
        severity_number: int,
        severity_text: str,
        body: str,
        scope: str,
        resource: Resource,
        attributes: Mapping[str, object] | None = None,
        trace_id: int = 0,
        span_id: int = 0,
        trace_flags: int = 0,
        dropped_attributes: int = 0,
    ) -> None:
        self.time = time
        self.observed_time = observed_time
        self.severity_number = severity_number
        self.severity_text = severity_text
        self.body = body
        self.scope = scope
        self.resource = resource
        self.attributes: Mapping[str, object] = attributes or {}
        self.trace_id = trace_id
        self.span_id = span_id
        self.trace_flags = trace_flags
        #: Attributes left out by OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT.
        self.dropped_attributes = dropped_attributes

    def __repr__(self) -> str:
        return (
            f"LogData({self.severity_text} {self.scope!r} {self.body!r} "
            f"trace={self.trace_id:032x} span={self.span_id:016x})"
        )
