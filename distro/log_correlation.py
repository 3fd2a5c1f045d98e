"""Trace ids on log lines, for structlog and loguru users: ``from telemetry_run.log_correlation
import structlog_processor, loguru_patcher``. The fields and their rules are the SDK's
(``telemetry_run.sdk.log_correlation``), which the ``logging`` instrumentor uses too.
"""

from __future__ import annotations

from telemetry_run.sdk.log_correlation import (
    SERVICE_NAME,
    SPAN_ID,
    TRACE_ID,
    TRACE_SAMPLED,
    correlation_fields,
    loguru_patcher,
    structlog_processor,
)

__all__ = [
    "SERVICE_NAME",
    "SPAN_ID",
    "TRACE_ID",
    "TRACE_SAMPLED",
    "correlation_fields",
    "loguru_patcher",
    "structlog_processor",
]
