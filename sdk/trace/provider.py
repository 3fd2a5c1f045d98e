"""TracerProvider and Tracer: where spans are sampled, created and handed to processors.

The sampler runs at start, so a sampled-out span costs an id and a small object; a recording
span is one slotted object whose end is a non-blocking hand-off. After ``shutdown`` every new
span is non-recording.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from types import MethodType
from typing import Any, Final

from telemetry_run.sdk import forking
from telemetry_run.sdk._native import speedups
from telemetry_run.sdk.context import (
    _CURRENT,
    _SPAN,
    SPAN_KEY,
    SUPPRESS_INSTRUMENTATION_KEY,
    Context,
    _current_get,
    _span_get,
)
from telemetry_run.sdk.diagnostics import Diagnostics, get_diagnostics
from telemetry_run.sdk.processors import MultiSpanProcessor, SpanProcessor
from telemetry_run.sdk.resources import Resource
from telemetry_run.sdk.trace import api
from telemetry_run.sdk.trace.api import (
    _SPAN_FLAGS,
    INVALID_SPAN_CONTEXT,
    Attributes,
    Link,
    NonRecordingSpan,
    SampledOutSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from telemetry_run.sdk.trace.ids import IdGenerator, RandomIdGenerator, id_functions
from telemetry_run.sdk.trace.limits import SpanLimits
from telemetry_run.sdk.trace.sampling import (
    DEFAULT_ON,
    Decision,
    Sampler,
    SamplingResult,
    compile_sampler,
    fixed_drops,
    parent_decision_table,
    static_root_result,
)
from telemetry_run.sdk.trace.scoped import CurrentSpan, StartsCurrentSpans
from telemetry_run.sdk.trace.span import (
    InstrumentationScope,
    ReadableSpan,
    RecordingSpan,
    _Extra,
    clean_attributes,
)

__all__ = ["Tracer", "TracerProvider"]

_time_ns = time.time_ns
_EMPTY_STATE: Final = TraceState.get_default()
_RECORD_AND_SAMPLE: Final = Decision.RECORD_AND_SAMPLE
_DROP: Final = Decision.DROP
_NO_FIXED_DROPS: Final = (False, False, False, False, False)
_ROOT: Final = 4  # fixed_drops' index for a span without a parent
_DROPPED: Final = SamplingResult(Decision.DROP)  # what a fixed drop decides (the parent's state)
_new_span = RecordingSpan.__new__


class TracerProvider(api.TracerProvider):
    """Holds the resource, sampler, limits, id generator and span processors."""

    def __init__(
        self,
        resource: Resource | None = None,
        sampler: Sampler | None = None,
        span_limits: SpanLimits | None = None,
        id_generator: IdGenerator | None = None,
        *,
        diagnostics: Diagnostics | None = None,
        shutdown_on_exit: bool = True,
        exit_timeout: float = 5.0,
    ):
        self._resource = resource if resource is not None else Resource.create()
        self.sampler: Sampler = sampler if sampler is not None else DEFAULT_ON
        self.span_limits = span_limits if span_limits is not None else SpanLimits()
        self.id_generator: IdGenerator = (
            id_generator if id_generator is not None else RandomIdGenerator()
        )
        self.diagnostics = diagnostics or get_diagnostics()
        self._processor = MultiSpanProcessor(self.diagnostics)
        self._tracers: dict[tuple[str, str | None, str | None], Tracer] = {}
        self._lock = threading.Lock()
        self._shutdown = False
        self._shutdown_lock = threading.Lock()
        ref = weakref.ref(self)
        if shutdown_on_exit:
            # A provider built by application code (not the launcher) still flushes at exit,
            # bounded so a dead collector cannot hold the process.
            atexit.register(_shutdown_at_exit, ref, exit_timeout)
        _providers.add(self)

    @property
    def resource(self) -> Resource:
        return self._resource

    @property
    def processors(self) -> tuple[SpanProcessor, ...]:
        return self._processor.processors

    @property
    def is_shutdown(self) -> bool:
        return self._shutdown

    def add_span_processor(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._processor.add(processor)
            for tracer in self._tracers.values():
                tracer._wire_processors()

    def _on_end_hook(self) -> Callable[[ReadableSpan], None]:
        """With one processor, spans call it directly (span.end guards the call); else fan out."""
        processors = self._processor.processors
        return processors[0].on_end if len(processors) == 1 else self._processor.on_end

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> Tracer:
        key = (instrumenting_module_name, instrumenting_library_version, schema_url)
        tracer = self._tracers.get(key)
        if tracer is None:
            with self._lock:
                tracer = self._tracers.get(key)
                if tracer is None:
                    scope = InstrumentationScope(
                        instrumenting_module_name or "",
                        instrumenting_library_version,
                        schema_url,
                        dict(attributes) if attributes else None,
                    )
                    tracer = self._tracers[key] = Tracer(self, scope)
        return tracer

    def force_flush(self, timeout: float = 30.0) -> bool:
        """Export every ended span before ``timeout`` seconds pass; False if that failed."""
        return self._processor.force_flush(deadline=time.monotonic() + max(timeout, 0.0))

    def shutdown(self, timeout: float = 30.0) -> None:
        """Flush and stop every processor within ``timeout`` seconds; later calls do nothing."""
        with self._shutdown_lock:
            if self._shutdown:
                return
            self._shutdown = True
        with self._lock:
            for tracer in self._tracers.values():
                tracer.enabled = False
                tracer._set_fixed_drops(_NO_FIXED_DROPS)  # start_span makes what shutdown makes
        self._processor.shutdown(deadline=time.monotonic() + max(timeout, 0.0))

    def _set_resource(self, resource: Resource) -> None:
        self._resource = resource
        for tracer in self._tracers.values():
            tracer.resource = resource


def _shutdown_at_exit(ref: weakref.ref[TracerProvider], timeout: float) -> None:
    provider = ref()
    if provider is not None:
        provider.shutdown(timeout)


_providers: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Fresh locks (another thread may have held one at fork time) and the child's own pid."""
    for provider in list(_providers):
        provider._lock = threading.Lock()
        provider._shutdown_lock = threading.Lock()
        if "process.pid" in provider.resource.attributes:
            pid = Resource({"process.pid": os.getpid()})
            provider._set_resource(provider.resource.merge(pid))


forking.register(_after_fork_in_child)


class Tracer(StartsCurrentSpans, api.Tracer):
    """Starts spans for one instrumentation scope; cheap to call from any thread."""

    def __init__(self, provider: TracerProvider, scope: InstrumentationScope):
        self.provider = provider
        self.scope = scope
        self.resource = provider.resource
        self.limits = limits = provider.span_limits
        self.max_attributes = limits.max_attributes
        self.max_attribute_length = limits.max_attribute_length
        # Value types set_attribute stores without a closer look (str only when unbounded).
        self.fast_types: frozenset[type] = frozenset(
            (bool, float, str) if limits.max_attribute_length is None else (bool, float)
        )
        self.diagnostics = provider.diagnostics
        self.enabled = not provider._shutdown  # cleared by provider.shutdown()
        self.ended = provider.diagnostics.spans_ended.incr
        self._started = provider.diagnostics.spans_started.incr
        self._sample = compile_sampler(provider.sampler)
        self._parent_table = parent_decision_table(provider.sampler)
        self._root_result = static_root_result(provider.sampler)
        self._ids = id_functions(provider.id_generator)
        self._new_span_id, self._new_trace_id = self._ids
        # random-trace-id (W3C Level 2) on the trace ids we mint: only the built-in generator's
        # are known to be random; a plugin generator's may encode a time or a host.
        self._random_bit = 2 if type(provider.id_generator) is RandomIdGenerator else 0
        self._set_fixed_drops(fixed_drops(provider.sampler) if self.enabled else _NO_FIXED_DROPS)
        self._wire_processors()
        if _native_starter is not None and type(self).start_span is Tracer.start_span:
            # The usual span start in C; anything else goes to the method below (the twin).
            vars(self)["start_span"] = _native_starter(self, MethodType(Tracer.start_span, self))

    def _set_fixed_drops(self, drops: tuple[bool, bool, bool, bool, bool]) -> None:
        """Which spans start sampled out without asking the sampler (see ``fixed_drops``).

        The answers are also kept as the flags of the span to make, None where the sampler
        must decide: for a root, and for a child of a NonRecordingSpan parent (a remote one,
        usually) in tables indexed by the parent's flags byte (the child keeps the parent's
        random-trace-id bit, and is never sampled).
        """
        self._fixed_drops = drops
        self._root_flags = _SPAN_FLAGS[self._random_bit] if drops[4] else None
        self._child_flags, self._child_flags_remote = (
            tuple(
                _SPAN_FLAGS[flags & 2] if drops[remote + (flags & 1)] else None
                for flags in range(256)
            )
            for remote in (0, 2)
        )

    def _wire_processors(self) -> None:
        provider = self.provider
        self.on_end = provider._on_end_hook()
        self.on_start = provider._processor.on_start if provider._processor.has_on_start else None

    def start_span(  # noqa: PLR0915  # the hot path stays in one frame: a call costs ~60 ns
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        if context is None:
            parent_span = _span_get()
            current = _current_get()
            suppressed = (
                SUPPRESS_INSTRUMENTATION_KEY in current
                and current[SUPPRESS_INSTRUMENTATION_KEY] is True
            )
        else:
            parent_span = context.get(SPAN_KEY)
            suppressed = context.get(SUPPRESS_INSTRUMENTATION_KEY) is True
        parent_type = type(parent_span)
        parent: SpanContext | None
        if parent_span is None:
            parent = None
        elif parent_type is RecordingSpan or parent_type is SampledOutSpan:
            # Its context, built by the first child (or an inject) and kept: no call after that.
            parent = parent_span._context or parent_span.get_span_context()  # type: ignore[attr-defined]
        else:
            parent = (
                parent_span._context  # type: ignore[attr-defined]  # type checked
                if parent_type is NonRecordingSpan
                else (parent_span.get_span_context() if isinstance(parent_span, Span) else None)
            )
            if parent is not None and not parent.is_valid:
                parent = None

        if suppressed or not self.enabled:
            return NonRecordingSpan(parent if parent is not None else INVALID_SPAN_CONTEXT)

        if parent is not None:
            trace_id = parent.trace_id
            random_bit = parent.trace_flags & 2  # it describes the trace id: kept as it came
            case = (2 if parent.is_remote else 0) + (parent.trace_flags & 1)
        else:
            trace_id = self._new_trace_id() or 1
            random_bit = self._random_bit
            case = _ROOT
        table = self._parent_table
        try:
            if table is not None and case != _ROOT:
                result = table[case]
            elif self._fixed_drops[case]:  # known without asking the sampler
                result = _DROPPED
            elif case == _ROOT and self._root_result is not None:  # likewise
                result = self._root_result
            else:
                result = self._sample(parent, context, trace_id, name, kind, attributes, links)
            decision = result.decision
        except Exception as exc:  # noqa: BLE001  # a plugin sampler's bug drops the span only
            self.diagnostics.internal_error("sampler", exc)
            return NonRecordingSpan(parent if parent is not None else INVALID_SPAN_CONTEXT)
        trace_state = result.trace_state
        if trace_state is None:
            trace_state = parent.trace_state if parent is not None else _EMPTY_STATE
        if decision is _DROP:
            # Sampled-out spans are most spans under a low ratio: one small object, no context.
            dropped: SampledOutSpan = SampledOutSpan()
            dropped._context = None
            dropped._trace_id = trace_id
            dropped._origin = None
            dropped._ids = self._ids
            dropped._flags = _SPAN_FLAGS[random_bit]
            dropped._trace_state = trace_state
            return dropped

        span = _new_span(RecordingSpan)
        span._tracer = self
        span._name = name
        span._trace_id = trace_id
        span._span_id = self._new_span_id() or 1
        span._flags = _SPAN_FLAGS[random_bit | (decision is _RECORD_AND_SAMPLE)]
        span._context = None
        span._parent = parent
        span._kind = kind
        span._end_time = None
        span._status = _UNSET
        # What most spans do not have waits in span._extra (a slot less is 8 bytes a span).
        if (
            record_exception
            and set_status_on_exception
            and trace_state is (parent.trace_state if parent is not None else _EMPTY_STATE)
        ):
            span._extra = None
        else:
            extra = span._extra = _Extra()
            extra.exc_flags = (1 if record_exception else 0) | (2 if set_status_on_exception else 0)
            extra.trace_state = trace_state
        if attributes is None and not result.attributes:
            span._attributes = {}
        else:
            sampled = result.attributes  # usually none: then the caller's, which is copied
            span._attributes, limited = clean_attributes(
                ({**sampled, **attributes} if sampled else attributes) if attributes else sampled,
                self.max_attributes,
                self.max_attribute_length,
                self.diagnostics,
            )
            if limited:  # attributes over the limit
                span._more().dropped_attributes = limited
        if links:
            for link in links:
                span.add_link(link.context, link.attributes)
        span._start_time = start_time if start_time is not None else _time_ns()
        self._started()
        if self.on_start is not None:
            self.on_start(span, context)
        return span


class _SdkCurrentSpan(CurrentSpan):
    """``start_as_current_span`` of the SDK's tracer: a span its sampler drops anyway is made
    here, without a call to ``start_span``.

    That is every span under always_off, and every span below an unsampled parent under the
    parent-based samplers: the sampled-out path, which must cost little more than its context
    (ids, flags, trace state), the non-recording span and its attach and detach. Anything
    else (arguments, a recording parent, suppression, a sampler to ask) goes to ``start_span``.
    """

    __slots__ = ()

    def __enter__(self) -> Span:
        args = self._args
        if args is None and (parent_type := type(parent_span := _span_get())) is not RecordingSpan:
            tracer: Tracer = self._tracer  # type: ignore[assignment]  # set by Tracer only
            # flags stays None unless the sampler drops this span whatever it is; a root's
            # trace id is drawn when first needed (see SampledOutSpan), so it stays 0 here.
            flags: TraceFlags | None = None
            trace_id = 0
            origin: SampledOutSpan | None = None
            if parent_span is None:
                flags = tracer._root_flags
                trace_state = _EMPTY_STATE
            elif parent_type is SampledOutSpan:  # a local parent, not sampled
                if tracer._fixed_drops[0]:
                    flags = parent_span._flags  # type: ignore[attr-defined]  # type checked
                    trace_state = parent_span._trace_state  # type: ignore[attr-defined]
                    trace_id = parent_span._trace_id  # type: ignore[attr-defined]
                    origin = parent_span._origin or parent_span  # type: ignore[attr-defined,assignment]
            elif parent_type is NonRecordingSpan:
                parent: SpanContext = parent_span._context  # type: ignore[attr-defined]
                below = tracer._child_flags_remote if parent.is_remote else tracer._child_flags
                flags = below[parent.trace_flags]
                if not parent.is_valid:
                    flags = None
                trace_id = parent.trace_id
                trace_state = parent.trace_state
            if flags is not None:
                current = _current_get()
                if (
                    SUPPRESS_INSTRUMENTATION_KEY not in current
                    or current[SUPPRESS_INSTRUMENTATION_KEY] is not True
                ):
                    # start_span's sampled-out span, the same fields.
                    dropped: SampledOutSpan = SampledOutSpan()
                    dropped._context = None
                    dropped._trace_id = trace_id
                    dropped._origin = origin
                    dropped._ids = tracer._ids
                    dropped._flags = flags
                    dropped._trace_state = trace_state
                    self._span = dropped
                    self._token = _SPAN.set(dropped)
                    return dropped
        span = self._span = (
            self._tracer.start_span(self._name)
            if args is None
            else self._tracer.start_span(self._name, *args)
        )
        self._token = _SPAN.set(span)
        return span


Tracer.current_span_type = _SdkCurrentSpan
_UNSET: Final = api.Status()

#: ``sdk/_speedups.c``'s SpanStarter, where it was built: each tracer's ``start_span`` runs its
#: usual case (a parent of ours or a remote one, a decision the tracer's tables know, plain
#: attributes, no links) in C and hands anything else to the Python method, before any side
#: effect. None: the Python method runs alone (the span tests run both ways).
_native_starter: Callable[[Tracer, Callable[..., Span]], Callable[..., Span]] | None = None
if speedups is not None:
    speedups.configure_span_starter(
        (
            RecordingSpan,
            NonRecordingSpan,
            SampledOutSpan,
            SpanContext,
            SamplingResult,
            SPAN_KEY,
            SUPPRESS_INSTRUMENTATION_KEY,
            _CURRENT,
            _SPAN,
            SpanKind.INTERNAL,
            _DROP,
            _RECORD_AND_SAMPLE,
            _SPAN_FLAGS,
            _UNSET,
            _EMPTY_STATE,
            _time_ns,
        )
    )
    _native_starter = speedups.SpanStarter

#: ``RecordingSpan.set_attribute`` as written in span.py: the twin of ``sdk/_speedups.c``'s
#: ``span_set_attribute``, which replaces it where the native module is built. The native one
#: stores a plain value on a span that is recording, with room under the limit; it hands
#: anything else to this one (the span tests run both).
_python_set_attribute: Final = RecordingSpan.set_attribute
_native_set_attribute: Any = None
if speedups is not None:
    _native_set_attribute = speedups.set_attribute_for(_python_set_attribute)
    RecordingSpan.set_attribute = _native_set_attribute  # type: ignore[method-assign]
