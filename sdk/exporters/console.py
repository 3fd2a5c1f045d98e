"""Prints spans to a stream: one readable line per span, or one JSON object per line.

For trying things out (``OTEL_TRACES_EXPORTER=console``) and for the demo; the JSON form uses
the OTLP/JSON field names (hex ids, enum names) so it can be piped to tools.
"""

from __future__ import annotations

import math
import sys
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Final

from telemetry_run.sdk import forking
from telemetry_run.sdk.exporters import SUCCESS, ExportResult
from telemetry_run.sdk.trace.api import StatusCode

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = ["ConsoleSpanExporter", "format_span_line", "span_to_json"]


# Control characters (newlines above all) in a status description or an event name would break
# the one-line-per-span promise; tabs are harmless.
_ONE_LINE: Final = {c: f"\\x{c:02x}" for c in range(32) if c != 9} | {
    10: "\\n",
    13: "\\r",
}


def _one_line(text: str) -> str:
    return text.translate(_ONE_LINE)


def format_span_line(span: ReadableSpan) -> str:
    """``name kind duration status trace/span/parent ids {attributes}`` on one line."""
    ctx = span.context
    duration_ms = ((span.end_time or span.start_time) - span.start_time) / 1e6
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else "-" * 16
    status = span.status.status_code.name
    if span.status.description:
        status += f"({_one_line(span.status.description)})"
    parts = [
        f"{span.name!r}",
        span.kind.name,
        f"{duration_ms:.3f}ms",
        status,
        f"trace={ctx.trace_id:032x} span={ctx.span_id:016x} parent={parent}",
    ]
    if span.attributes:
        import json  # on the first span with attributes, not at every start-up

        parts.append(json.dumps(dict(span.attributes), default=str, ensure_ascii=False))
    if span.events:
        parts.append("events=[" + ", ".join(_one_line(e.name) for e in span.events) + "]")
    return " ".join(parts)


def _json_value(value: Any) -> Any:
    """NaN and the infinities are not JSON: OTLP/JSON (the protobuf mapping) spells them."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    return value


def _json_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _json_value(value) for key, value in attributes.items()}


def span_to_json(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.context
    out: dict[str, Any] = {
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
        "name": span.name,
        "kind": f"SPAN_KIND_{span.kind.name}",
        "startTimeUnixNano": span.start_time,
        "endTimeUnixNano": span.end_time,
        "attributes": _json_attributes(span.attributes),
        "status": {"code": f"STATUS_CODE_{span.status.status_code.name}"},
        "resource": _json_attributes(span.resource.attributes),
        "scope": {"name": span.instrumentation_scope.name},
    }
    if span.parent is not None:
        out["parentSpanId"] = f"{span.parent.span_id:016x}"
    if ctx.trace_state:
        out["traceState"] = ctx.trace_state.to_header()
    if span.status.status_code is StatusCode.ERROR and span.status.description:
        out["status"]["message"] = span.status.description
    if span.events:
        out["events"] = [
            {
                "name": e.name,
                "timeUnixNano": e.timestamp,
                "attributes": _json_attributes(e.attributes),
            }
            for e in span.events
        ]
    if span.links:
        out["links"] = [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                "attributes": _json_attributes(link.attributes),
            }
            for link in span.links
        ]
    return out


class ConsoleSpanExporter:
    """Writes each span as a line (``json=False``) or a JSON object per line (``json=True``)."""

    def __init__(self, out: IO[str] | None = None, *, json: bool = False) -> None:
        self._out = out
        self._json = json
        self._lock = threading.Lock()
        _instances.add(self)

    def export(self, spans: Sequence[ReadableSpan], *, deadline: float) -> ExportResult:
        if self._json:
            import json  # on the first export, not at every start-up

            text = "".join(
                json.dumps(span_to_json(s), default=str, ensure_ascii=False) + "\n" for s in spans
            )
        else:
            text = "".join(format_span_line(s) + "\n" for s in spans)
        out = self._out if self._out is not None else sys.stdout
        try:
            with self._lock:
                out.write(text)
                out.flush()
        except (OSError, ValueError) as exc:  # a closed or broken stdout
            return ExportResult(False, error=f"console write failed: {exc}")
        return SUCCESS

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        pass


# The lock is held across a write that can block (a full pipe, a slow terminal): a process forked
# meanwhile would inherit it locked and its first export would wait forever.
_instances: weakref.WeakSet[ConsoleSpanExporter] = weakref.WeakSet()


def _reinit_locks_after_fork() -> None:
    for exporter in list(_instances):
        exporter._lock = threading.Lock()


forking.register(_reinit_locks_after_fork)
