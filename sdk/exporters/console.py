"""Prints spans to a stream: a waterfall per trace, one readable line per span, or JSON lines.

For trying things out (``OTEL_TRACES_EXPORTER=console``) and for the demo; the JSON form uses
the OTLP/JSON field names (hex ids, enum names) so it can be piped to tools.

Spans reach an exporter in end order, in batches, so the waterfall form holds each trace's
spans until its local root (a span with no parent, or a remote one) has ended, then draws the
trace (``waterfall.py``). What is held is bounded (traces and spans): a trace pushed out, or
still held at ``force_flush``/``shutdown`` (a root that never ended here), is drawn with a note
saying so: every span exported is printed.
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

__all__ = ["ConsoleSpanExporter", "format_span_line", "span_to_json", "spans_held"]


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


DEFAULT_MAX_TRACES: Final = 256
DEFAULT_MAX_SPANS: Final = 8192


class ConsoleSpanExporter:
    """Writes spans as a waterfall per trace (``waterfall=True``), a line per span (the
    default), or a JSON object per line (``json=True``).

    ``color`` (waterfall only): None colours when the stream is a terminal. ``max_traces`` and
    ``max_spans`` bound what the waterfall form holds while it waits for local roots.
    """

    def __init__(
        self,
        out: IO[str] | None = None,
        *,
        json: bool = False,
        waterfall: bool = False,
        color: bool | None = None,
        max_traces: int = DEFAULT_MAX_TRACES,
        max_spans: int = DEFAULT_MAX_SPANS,
    ) -> None:
        self._out = out
        self._json = json
        self._waterfall = waterfall and not json
        self._color = color
        self._held = _HeldTraces(max(max_traces, 1), max(max_spans, 1))
        self._lock = threading.Lock()
        _instances.add(self)

    def export(self, spans: Sequence[ReadableSpan], *, deadline: float) -> ExportResult:
        if self._waterfall:
            with self._lock:
                text = self._draw(self._held.add(spans))
            return self._write(text) if text else SUCCESS
        if self._json:
            import json  # on the first export, not at every start-up

            text = "".join(
                json.dumps(span_to_json(s), default=str, ensure_ascii=False) + "\n" for s in spans
            )
        else:
            text = "".join(format_span_line(s) + "\n" for s in spans)
        return self._write(text)

    def _stream(self) -> IO[str]:
        return self._out if self._out is not None else sys.stdout

    def _write(self, text: str) -> ExportResult:
        out = self._stream()
        try:
            with self._lock:
                out.write(text)
                out.flush()
        except (OSError, ValueError) as exc:  # a closed or broken stdout, or its encoding
            return ExportResult(False, error=f"console write failed: {exc}")
        return SUCCESS

    def _draw(self, traces: list[tuple[list[ReadableSpan], str | None]]) -> str:
        if not traces:
            return ""
        from telemetry_run.sdk.exporters.waterfall import UNICODE, Glyphs, render_trace

        out = self._stream()
        color = self._color
        if color is None:
            try:
                color = out.isatty()
            except (OSError, ValueError):
                color = False
        glyphs = UNICODE if _encodes(out, "█├│└…✗⇠µ") else Glyphs(unicode=False)
        parts = []
        for spans, note in traces:
            try:
                parts.append(render_trace(spans, color=color, glyphs=glyphs, note=note))
            except Exception as exc:  # noqa: BLE001  # our bug: the spans still get printed
                from telemetry_run.sdk.diagnostics import get_diagnostics

                get_diagnostics().internal_error("the console waterfall", exc)
                parts.append("".join(format_span_line(s) + "\n" for s in spans))
        return "".join(parts)

    def _print_held(self, note: str) -> bool:
        if not self._waterfall:
            return True
        with self._lock:
            text = self._draw(self._held.take_all(note))
        return not text or self._write(text).success

    def force_flush(self, *, deadline: float) -> bool:
        return self._print_held("printed at flush: its local root had not ended")

    def shutdown(self, *, deadline: float) -> None:
        self._print_held("printed at exit: its local root had not ended")


def spans_held() -> bool:
    """Whether a waterfall exporter of this process holds spans its shutdown would print (the
    exit hook asks before skipping an idle process's shutdown)."""
    return any(exporter._held.count for exporter in list(_instances))


def _encodes(out: IO[str], sample: str) -> bool:
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        sample.encode(encoding)
    except (LookupError, UnicodeError):
        return False
    return True


class _HeldTraces:
    """Spans waiting for their trace's local root, by trace, oldest trace first; bounded."""

    __slots__ = ("_max_spans", "_max_traces", "_traces", "count")

    def __init__(self, max_traces: int, max_spans: int) -> None:
        self._traces: dict[int, list[ReadableSpan]] = {}
        self.count = 0
        self._max_traces = max_traces
        self._max_spans = max_spans

    def add(self, spans: Sequence[ReadableSpan]) -> list[tuple[list[ReadableSpan], str | None]]:
        """Hold ``spans``; return the traces to draw now: complete ones, then evicted ones."""
        touched: dict[int, None] = {}
        for span in spans:
            trace_id = span.context.trace_id
            self._traces.setdefault(trace_id, []).append(span)
            touched[trace_id] = None
        self.count += len(spans)
        ready: list[tuple[list[ReadableSpan], str | None]] = []
        for trace_id in touched:
            held = self._traces[trace_id]
            if _complete(held):
                ready.append((held, None))
                del self._traces[trace_id]
                self.count -= len(held)
        while self._traces and (
            len(self._traces) > self._max_traces or self.count > self._max_spans
        ):
            trace_id = next(iter(self._traces))
            held = self._traces.pop(trace_id)
            self.count -= len(held)
            ready.append((held, "printed early: too many spans held waiting for local roots"))
        return ready

    def take_all(self, note: str) -> list[tuple[list[ReadableSpan], str | None]]:
        traces: list[tuple[list[ReadableSpan], str | None]] = [
            (held, note) for held in self._traces.values()
        ]
        self._traces.clear()
        self.count = 0
        return traces


def _complete(spans: list[ReadableSpan]) -> bool:
    """A local root has ended and every span's local parent is here: nothing more to wait for.

    A remote parent that is here too (a call to ourselves) nests; one that is not is another
    process's, and no span of this one will fill it in.
    """
    ids = {s.context.span_id for s in spans}
    has_root = False
    for span in spans:
        parent = span.parent
        if parent is None or parent.is_remote:
            has_root = True
        elif parent.span_id not in ids:
            return False
    return has_root


# The lock is held across a write that can block (a full pipe, a slow terminal): a process forked
# meanwhile would inherit it locked and its first export would wait forever.
_instances: weakref.WeakSet[ConsoleSpanExporter] = weakref.WeakSet()


def _reinit_locks_after_fork() -> None:
    for exporter in list(_instances):
        exporter._lock = threading.Lock()
        # The parent prints what it held; the child's copy would print those spans twice.
        exporter._held.take_all("")


forking.register(_reinit_locks_after_fork)
