"""Fixed traces for the waterfall tests: real SDK spans with chosen ids and clock readings.

Ids come from a counter and every start and end time is given, so a trace renders the same
text on every machine (the golden files in ``golden/``).
"""

from __future__ import annotations

import itertools

from telemetry_run.sdk import InMemorySpanExporter, ReadableSpan, Resource, TracerProvider
from telemetry_run.sdk.context import Context
from telemetry_run.sdk.processors.simple import SimpleSpanProcessor
from telemetry_run.sdk.trace.api import NonRecordingSpan, Span, SpanContext, SpanKind, StatusCode
from telemetry_run.sdk.trace.current import set_span_in_context
from telemetry_run.sdk.trace.provider import Tracer

MS = 1_000_000
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
REMOTE_PARENT = 0x00F067AA0BA902B7


class CountingIds:
    """Span ids 1, 2, 3, ... and one fixed trace id."""

    def __init__(self, trace_id: int = TRACE_ID) -> None:
        self._next = itertools.count(1)
        self._trace_id = trace_id

    def generate_span_id(self) -> int:
        return next(self._next)

    def generate_trace_id(self) -> int:
        return self._trace_id


class TraceBuilder:
    """Starts and ends spans at given millisecond offsets from ``T0``; keeps them in end order."""

    def __init__(self, service: str = "shop", trace_id: int = TRACE_ID) -> None:
        self.recorder = InMemorySpanExporter()
        provider = TracerProvider(
            Resource({"service.name": service}),
            id_generator=CountingIds(trace_id),
            shutdown_on_exit=False,
        )
        provider.add_span_processor(SimpleSpanProcessor(self.recorder))
        self.tracer: Tracer = provider.get_tracer("waterfall-test")

    def span(
        self,
        name: str,
        start_ms: float,
        end_ms: float,
        parent: Span | SpanContext | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, str | int] | None = None,
        error: str | None = None,
    ) -> Span:
        if isinstance(parent, SpanContext):
            parent = NonRecordingSpan(parent)
        context = set_span_in_context(parent) if parent is not None else Context()
        span = self.tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            start_time=T0 + int(start_ms * MS),
        )
        if error is not None:
            span.set_status(StatusCode.ERROR, error)
        self._ends.append((span, T0 + int(end_ms * MS)))
        return span

    _ends: list[tuple[Span, int]]

    def __enter__(self) -> TraceBuilder:
        self._ends = []
        return self

    def __exit__(self, *exc: object) -> None:
        for span, end in sorted(self._ends, key=lambda pair: pair[1]):
            span.end(end_time=end)

    def spans(self) -> list[ReadableSpan]:
        return list(self.recorder.get_finished_spans())


def remote(span_id: int = REMOTE_PARENT, trace_id: int = TRACE_ID) -> SpanContext:
    """The context a ``traceparent`` from another process would give."""
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=1)


def demo_trace() -> list[ReadableSpan]:
    """What ``examples/flask_demo.py`` makes: a client span calling a Flask app twice."""
    with TraceBuilder("demo") as b:
        root = b.span("demo client", 0, 18.2)
        get = b.span("GET", 0.5, 8.4, root, SpanKind.CLIENT, {"http.response.status_code": 200})
        server = b.span(
            "GET /users/<int:user_id>",
            1.9,
            7.0,
            remote(get.get_span_context().span_id),  # the header carried it: a remote parent
            SpanKind.SERVER,
            {"http.route": "/users/<int:user_id>", "http.response.status_code": 200},
        )
        b.span("load_user", 3.0, 3.4, server, attributes={"user.id": 42})
        b.span(
            "POST",
            9.0,
            18.0,
            root,
            SpanKind.CLIENT,
            {"http.response.status_code": 500},
            error="500",
        )
    return b.spans()
