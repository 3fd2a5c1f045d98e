"""The last N traces in bounded memory, grouped by trace id, and the views the page asks for.

Bounds: at most ``max_traces`` traces (the trace that arrived first is evicted first), at most
``max_spans_per_trace`` spans in each, and at most ``max_bytes`` of span data in all (older
traces are evicted to stay below it); every span not kept is counted in ``stats()`` (the page
shows the counts), so a full viewer never looks like a complete one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from telemetry_run.viewer.decode import SpanRecord, span_details

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_SPANS_PER_TRACE", "DEFAULT_MAX_TRACES", "TraceStore"]

DEFAULT_MAX_TRACES = 100
DEFAULT_MAX_SPANS_PER_TRACE = 1000
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class _Trace:
    __slots__ = ("dropped", "size", "spans")

    def __init__(self) -> None:
        self.spans: dict[str, SpanRecord] = {}  # by span id, in arrival order
        self.dropped = 0  # spans beyond the per-trace cap
        self.size = 0  # bytes, as SpanRecord.size counts them


class TraceStore:
    """Thread-safe: the OTLP servers add, the web server reads."""

    def __init__(
        self,
        max_traces: int = DEFAULT_MAX_TRACES,
        max_spans_per_trace: int = DEFAULT_MAX_SPANS_PER_TRACE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if max_traces < 1 or max_spans_per_trace < 1:
            raise ValueError("the store keeps at least one trace of one span")
        self.max_traces = max_traces
        self.max_spans_per_trace = max_spans_per_trace
        self.max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._received = 0
        self._evicted_traces = 0
        self._evicted_spans = 0
        self._over_cap = 0
        self._invalid = 0
        self._duplicates = 0

    def add(self, records: Iterable[SpanRecord], invalid: int = 0) -> None:
        """Store ``records`` (spans of any traces); ``invalid`` spans were unplaceable."""
        with self._lock:
            self._invalid += invalid
            for record in records:
                self._received += 1
                trace = self._traces.get(record.trace_id)
                if trace is None:
                    trace = self._traces[record.trace_id] = _Trace()
                if record.span_id in trace.spans:
                    self._duplicates += 1  # an exporter's retry of a delivered batch
                elif len(trace.spans) >= self.max_spans_per_trace:
                    trace.dropped += 1
                    self._over_cap += 1
                else:
                    trace.spans[record.span_id] = record
                    trace.size += record.size
                    self._bytes += record.size
                self._evict(keep=trace)

    def _evict(self, keep: _Trace) -> None:
        """Evict the oldest traces beyond the count or the byte budget, never ``keep`` (the
        trace being added to: a single trace larger than the budget stays, capped in spans)."""
        while len(self._traces) > self.max_traces or (
            self._bytes > self.max_bytes and len(self._traces) > 1
        ):
            oldest_id = next(tid for tid, trace in self._traces.items() if trace is not keep)
            evicted = self._traces.pop(oldest_id)
            self._bytes -= evicted.size
            self._evicted_traces += 1
            self._evicted_spans += len(evicted.spans)

    def stats(self) -> dict[str, int]:
        """What was received and what was not kept, by reason."""
        with self._lock:
            return {
                "traces": len(self._traces),
                "max_traces": self.max_traces,
                "max_spans_per_trace": self.max_spans_per_trace,
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "received_spans": self._received,
                "evicted_traces": self._evicted_traces,
                "evicted_spans": self._evicted_spans,
                "spans_over_trace_cap": self._over_cap,
                "invalid_spans": self._invalid,
                "duplicate_spans": self._duplicates,
            }

    def services(self) -> list[str]:
        with self._lock:
            traces = list(self._traces.values())
        return sorted({span.service for trace in traces for span in list(trace.spans.values())})

    def summaries(
        self, service: str | None = None, errors_only: bool = False
    ) -> list[dict[str, Any]]:
        """One line per trace, the latest first; ``service`` keeps traces that service took part
        in, ``errors_only`` traces with a span whose status is error."""
        with self._lock:
            snapshot = [
                (trace_id, list(t.spans.values()), t.dropped)
                for trace_id, t in self._traces.items()
            ]
        lines = []
        for trace_id, spans, dropped in snapshot:
            line = _summary(trace_id, spans, dropped)
            if service and service not in line["services"]:
                continue
            if errors_only and not line["error_count"]:
                continue
            lines.append(line)
        lines.sort(key=lambda line: line["start_ms"], reverse=True)
        return lines

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace's summary and its spans in tree order (``depth``, offsets in ms from the
        trace's start), or None when it is unknown (or evicted)."""
        with self._lock:
            trace = self._traces.get(trace_id.lower())
            if trace is None:
                return None
            spans, dropped = list(trace.spans.values()), trace.dropped
        view = _summary(trace_id.lower(), spans, dropped)
        origin = min(span.start for span in spans)
        view["spans"] = [
            _span_view(span, depth, orphan, origin) for span, depth, orphan in _tree(spans)
        ]
        return view


def _roots_first(spans: list[SpanRecord]) -> list[tuple[SpanRecord, bool]]:
    """The spans with no parent in the trace, true roots before those whose parent is elsewhere
    (another process that did not send it, or not yet), each earliest first."""
    ids = {span.span_id for span in spans}
    roots = [(span, span.parent_span_id != "") for span in spans if span.parent_span_id not in ids]
    roots.sort(key=lambda pair: (pair[1], pair[0].start))
    return roots


def _tree(spans: list[SpanRecord]) -> list[tuple[SpanRecord, int, bool]]:
    """Depth-first order, children by start time: ``(span, depth, parent_missing)``."""
    children: dict[str, list[SpanRecord]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda span: span.start)
    order: list[tuple[SpanRecord, int, bool]] = []
    seen: set[str] = set()
    stack = [(span, 0, orphan) for span, orphan in reversed(_roots_first(spans))]
    while stack:
        span, depth, orphan = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        order.append((span, depth, orphan))
        stack.extend(
            (child, depth + 1, False) for child in reversed(children.get(span.span_id, []))
        )
    # Spans only reachable through a cycle of parent ids (a broken sender): shown, at the top.
    order.extend((span, 0, True) for span in spans if span.span_id not in seen)
    return order


def _summary(trace_id: str, spans: list[SpanRecord], dropped: int) -> dict[str, Any]:
    start = min(span.start for span in spans)
    end = max(span.end for span in spans)
    roots = _roots_first(spans)
    root = roots[0][0] if roots else min(spans, key=lambda span: span.start)
    return {
        "trace_id": trace_id,
        "service": root.service,
        "root_name": root.name,
        "root_has_parent": bool(roots[0][1]) if roots else True,
        "start_ms": start / 1e6,
        "duration_ms": (end - start) / 1e6,
        "span_count": len(spans),
        "error_count": sum(1 for span in spans if span.status == "error"),
        "dropped_spans": dropped,
        "services": sorted({span.service for span in spans}),
    }


def _span_view(span: SpanRecord, depth: int, orphan: bool, origin: int) -> dict[str, Any]:
    details = span_details(span)
    return {
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "kind": details["kind"],
        "service": span.service,
        "status": {"code": span.status, "message": details["status_message"]},
        "depth": depth,
        "parent_missing": orphan,
        "offset_ms": (span.start - origin) / 1e6,
        "duration_ms": (span.end - span.start) / 1e6,
        "start_unix_nano": str(span.start),
        "attributes": details["attributes"],
        "events": [
            {
                "name": event["name"],
                "offset_ms": (event["time"] - origin) / 1e6,
                "attributes": event["attributes"],
            }
            for event in details["events"]
        ],
        "links": details["links"],
        "resource": span.resource,
        "scope": span.scope,
        "trimmed": span.trimmed,
    }
