"""Samplers decide at span start whether a span records and is exported.

Shapes follow the OpenTelemetry Python SDK so a custom sampler ports by changing imports, and the
ratio rule is the same (the low 64 bits of the trace id below ``ratio * 2**64``), so our services
and Python services using the peer keep or drop the same traces.
"""

from __future__ import annotations

import abc
import enum
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, cast

from telemetry_run.sdk._log import logger as _logger
from telemetry_run.sdk._printable import quote
from telemetry_run.sdk.context import get_current
from telemetry_run.sdk.trace.api import (
    Attributes,
    AttributeValue,
    Link,
    SpanContext,
    SpanKind,
    TraceState,
)
from telemetry_run.sdk.trace.current import get_current_span

if TYPE_CHECKING:
    from telemetry_run.sdk.context import Context

__all__ = [
    "ALWAYS_OFF",
    "ALWAYS_ON",
    "DEFAULT_OFF",
    "DEFAULT_ON",
    "DEFAULT_RATIO",
    "Decision",
    "ParentBased",
    "ParentBasedTraceIdRatio",
    "Sampler",
    "SamplingResult",
    "StaticSampler",
    "TraceIdRatioBased",
    "compile_sampler",
    "fixed_drops",
    "parent_decision_table",
    "parse_ratio",
    "sampler_named",
    "static_root_result",
]


class Decision(enum.Enum):
    DROP = 0
    RECORD_ONLY = 1
    RECORD_AND_SAMPLE = 2

    def is_recording(self) -> bool:
        return self is not Decision.DROP

    def is_sampled(self) -> bool:
        return self is Decision.RECORD_AND_SAMPLE


_EMPTY: Final[Mapping[str, AttributeValue]] = {}


class SamplingResult:
    """A decision, attributes to add to the span, and the trace state the span carries."""

    __slots__ = ("attributes", "decision", "trace_state")

    def __init__(
        self,
        decision: Decision,
        attributes: Attributes = None,
        trace_state: TraceState | None = None,
    ):
        self.decision = decision
        self.attributes: Mapping[str, AttributeValue] = attributes or _EMPTY
        self.trace_state = trace_state

    def __repr__(self) -> str:
        return f"SamplingResult({self.decision.name}, {dict(self.attributes)!r})"


class Sampler(abc.ABC):
    """Runs on every span start: keep ``should_sample`` cheap and never raise from it."""

    @abc.abstractmethod
    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult: ...

    @abc.abstractmethod
    def description(self) -> str: ...

    def get_description(self) -> str:
        """The OpenTelemetry Python name for ``description()``."""
        return self.description()

    def __repr__(self) -> str:
        return self.description()


_RECORD_AND_SAMPLE: Final = SamplingResult(Decision.RECORD_AND_SAMPLE)
_DROP: Final = SamplingResult(Decision.DROP)


class StaticSampler(Sampler):
    """Always the same decision."""

    def __init__(self, decision: Decision):
        self._decision = decision
        self._result = SamplingResult(decision)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return self._result

    def description(self) -> str:
        return (
            "AlwaysOnSampler"
            if self._decision is Decision.RECORD_AND_SAMPLE
            else ("AlwaysOffSampler" if self._decision is Decision.DROP else "RecordOnlySampler")
        )


ALWAYS_ON: Final = StaticSampler(Decision.RECORD_AND_SAMPLE)
ALWAYS_OFF: Final = StaticSampler(Decision.DROP)

_TRACE_ID_LOW_64: Final = (1 << 64) - 1


class TraceIdRatioBased(Sampler):
    """Keeps ``rate`` of traces, decided from the trace id so every service agrees."""

    def __init__(self, rate: float):
        if not _is_ratio(rate):
            raise ValueError(f"ratio must be in [0, 1], got {rate!r}")
        self._rate = rate
        self._bound = self.get_bound_for_rate(rate)

    @staticmethod
    def get_bound_for_rate(rate: float) -> int:
        return round(rate * (_TRACE_ID_LOW_64 + 1))

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def bound(self) -> int:
        return self._bound

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return _RECORD_AND_SAMPLE if trace_id & _TRACE_ID_LOW_64 < self._bound else _DROP

    def description(self) -> str:
        return f"TraceIdRatioBased{{{self._rate}}}"


class ParentBased(Sampler):
    """Follows the parent's sampled flag; ``root`` decides for spans without a parent."""

    def __init__(
        self,
        root: Sampler,
        remote_parent_sampled: Sampler = ALWAYS_ON,
        remote_parent_not_sampled: Sampler = ALWAYS_OFF,
        local_parent_sampled: Sampler = ALWAYS_ON,
        local_parent_not_sampled: Sampler = ALWAYS_OFF,
    ):
        self._root = root
        self._remote_sampled = remote_parent_sampled
        self._remote_not_sampled = remote_parent_not_sampled
        self._local_sampled = local_parent_sampled
        self._local_not_sampled = local_parent_not_sampled

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = get_current_span(parent_context).get_span_context()
        if not parent.is_valid:
            sampler = self._root
        elif parent.is_remote:
            sampler = self._remote_sampled if parent.trace_flags & 1 else self._remote_not_sampled
        else:
            sampler = self._local_sampled if parent.trace_flags & 1 else self._local_not_sampled
        return sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def description(self) -> str:
        return (
            f"ParentBased{{root:{self._root.description()},"
            f"remoteParentSampled:{self._remote_sampled.description()},"
            f"remoteParentNotSampled:{self._remote_not_sampled.description()},"
            f"localParentSampled:{self._local_sampled.description()},"
            f"localParentNotSampled:{self._local_not_sampled.description()}}}"
        )


class ParentBasedTraceIdRatio(ParentBased):
    """``parentbased_traceidratio``: the ratio for roots, the parent's flag otherwise."""

    def __init__(self, rate: float):
        super().__init__(TraceIdRatioBased(rate))


def _is_ratio(rate: float) -> bool:
    return 0.0 <= rate <= 1.0  # NaN fails too


#: The ratio when ``OTEL_TRACES_SAMPLER_ARG`` is unset or invalid (the specification's default).
DEFAULT_RATIO: Final = 1.0


def parse_ratio(arg: str | None) -> float:
    """``OTEL_TRACES_SAMPLER_ARG`` as a ratio: 1.0 when unset; one warning and 1.0 when invalid."""
    if arg is None or not arg.strip():
        return DEFAULT_RATIO
    try:
        ratio = float(arg.strip())
    except ValueError:
        ratio = math.nan
    if not _is_ratio(ratio):
        _logger.warning(
            "OTEL_TRACES_SAMPLER_ARG=%s is not a ratio in [0, 1]; using the default (%s)",
            quote(arg),
            DEFAULT_RATIO,
        )
        return DEFAULT_RATIO
    return ratio


def sampler_named(name: str, arg: str | None) -> Sampler | None:
    """The sampler ``OTEL_TRACES_SAMPLER=name`` means, ``arg`` being ``OTEL_TRACES_SAMPLER_ARG``
    (read only by the ratio samplers); None for a name the specification does not define."""
    if name == "always_on":
        return ALWAYS_ON
    if name == "always_off":
        return ALWAYS_OFF
    if name == "parentbased_always_on":
        return ParentBased(ALWAYS_ON)
    if name == "parentbased_always_off":
        return ParentBased(ALWAYS_OFF)
    if name == "traceidratio":
        return TraceIdRatioBased(parse_ratio(arg))
    if name == "parentbased_traceidratio":
        return ParentBasedTraceIdRatio(parse_ratio(arg))
    return None


# Our own ParentBased classes, which do not change should_sample; a user's subclass might.
_PARENT_BASED_TYPES: Final = (ParentBased, ParentBasedTraceIdRatio)

DEFAULT_ON: Final = ParentBased(ALWAYS_ON)
DEFAULT_OFF: Final = ParentBased(ALWAYS_OFF)


SampleFn = Callable[
    [
        SpanContext | None,
        "Context | None",
        int,
        str,
        SpanKind | None,
        Attributes,
        Sequence[Link] | None,
    ],
    SamplingResult,
]


def compile_sampler(sampler: Sampler) -> SampleFn:
    """A function deciding like ``sampler``, given the parent SpanContext the tracer already has.

    For the built-in samplers (exact types, so a subclass's own ``should_sample`` is always
    honoured) this skips re-reading the parent from the context and the chain of calls through
    ParentBased; any other sampler is called through ``should_sample`` as usual.
    """
    kind = type(sampler)
    if kind is StaticSampler:
        result: SamplingResult = cast(StaticSampler, sampler)._result

        def static(
            parent: SpanContext | None,
            ctx: Context | None,
            trace_id: int,
            name: str,
            span_kind: SpanKind | None,
            attributes: Attributes,
            links: Sequence[Link] | None,
        ) -> SamplingResult:
            return result

        return static
    if kind is TraceIdRatioBased:
        bound = cast(TraceIdRatioBased, sampler).bound

        def ratio(
            parent: SpanContext | None,
            ctx: Context | None,
            trace_id: int,
            name: str,
            span_kind: SpanKind | None,
            attributes: Attributes,
            links: Sequence[Link] | None,
        ) -> SamplingResult:
            return _RECORD_AND_SAMPLE if trace_id & _TRACE_ID_LOW_64 < bound else _DROP

        return ratio
    if kind in _PARENT_BASED_TYPES:
        pb = cast(ParentBased, sampler)
        root = compile_sampler(pb._root)
        table = parent_decision_table(pb)
        if table is not None:
            # The usual configuration: with a parent, the decision is a fixed result.
            lns, ls, rns, rs = table

            def parent_based_static(
                parent: SpanContext | None,
                ctx: Context | None,
                trace_id: int,
                name: str,
                span_kind: SpanKind | None,
                attributes: Attributes,
                links: Sequence[Link] | None,
            ) -> SamplingResult:
                if parent is None:
                    return root(parent, ctx, trace_id, name, span_kind, attributes, links)
                if parent.is_remote:
                    return rs if parent.trace_flags & 1 else rns
                return ls if parent.trace_flags & 1 else lns

            return parent_based_static

        local_not_sampled, local_sampled, remote_not_sampled, remote_sampled = (
            compile_sampler(d) for d in _by_parent(pb)
        )

        def parent_based(
            parent: SpanContext | None,
            ctx: Context | None,
            trace_id: int,
            name: str,
            span_kind: SpanKind | None,
            attributes: Attributes,
            links: Sequence[Link] | None,
        ) -> SamplingResult:
            if parent is None:
                fn = root
            elif parent.is_remote:
                fn = remote_sampled if parent.trace_flags & 1 else remote_not_sampled
            else:
                fn = local_sampled if parent.trace_flags & 1 else local_not_sampled
            return fn(parent, ctx, trace_id, name, span_kind, attributes, links)

        return parent_based

    should_sample = sampler.should_sample

    def generic(
        parent: SpanContext | None,
        ctx: Context | None,
        trace_id: int,
        name: str,
        span_kind: SpanKind | None,
        attributes: Attributes,
        links: Sequence[Link] | None,
    ) -> SamplingResult:
        return should_sample(
            ctx if ctx is not None else get_current(), trace_id, name, span_kind, attributes, links
        )

    return generic


def _by_parent(sampler: ParentBased) -> tuple[Sampler, Sampler, Sampler, Sampler]:
    """The delegates for a span with a parent, indexed ``2 * parent.is_remote + sampled``."""
    return (
        sampler._local_not_sampled,
        sampler._local_sampled,
        sampler._remote_not_sampled,
        sampler._remote_sampled,
    )


def parent_decision_table(sampler: Sampler) -> tuple[SamplingResult, ...] | None:
    """For a ParentBased sampler whose parent delegates are fixed decisions: the result for a
    span with a parent, indexed by ``2 * parent.is_remote + sampled``. None otherwise.

    With a parent, the usual configuration decides by a table lookup, not a call.
    """
    if type(sampler) not in _PARENT_BASED_TYPES:
        return None
    assert isinstance(sampler, ParentBased)
    delegates = _by_parent(sampler)
    if not all(type(d) is StaticSampler for d in delegates):
        return None
    return tuple(cast(StaticSampler, d)._result for d in delegates)


def static_root_result(sampler: Sampler) -> SamplingResult | None:
    """The result ``sampler`` gives every root span, when that is one fixed result: the
    built-in static samplers, alone or as a ParentBased's root (exact types, as above). None
    when the sampler must be asked; a root span (every request without a traceparent) then
    costs no call to decide."""
    kind = type(sampler)
    if kind in _PARENT_BASED_TYPES:
        sampler = cast(ParentBased, sampler)._root
        kind = type(sampler)
    return cast(StaticSampler, sampler)._result if kind is StaticSampler else None


_NEVER: Final = (False, False, False, False, False)
_ALWAYS: Final = (True, True, True, True, True)


def fixed_drops(sampler: Sampler) -> tuple[bool, bool, bool, bool, bool]:
    """Which spans ``sampler`` drops whatever their name, trace id, kind and attributes.

    Indexed like ``parent_decision_table`` (``2 * parent.is_remote + sampled``) for a span with
    a valid parent, and 4 for a root span. The tracer starts those spans without asking the
    sampler: the sampled-out path, which under always_off or a parent-based sampler below an
    unsampled parent is every span, costs little more than the ids and a context. Only the
    built-in samplers' exact types are read, so a subclass's own ``should_sample`` still runs.
    """
    kind = type(sampler)
    if kind is StaticSampler:
        return _ALWAYS if cast(StaticSampler, sampler)._decision is Decision.DROP else _NEVER
    if kind not in _PARENT_BASED_TYPES:
        return _NEVER
    pb = cast(ParentBased, sampler)
    a, b, c, d = (type(s) is StaticSampler and s._decision is Decision.DROP for s in _by_parent(pb))
    return (a, b, c, d, fixed_drops(pb._root)[4])
