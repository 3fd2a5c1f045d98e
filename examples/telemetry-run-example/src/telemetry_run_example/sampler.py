"""The ``route`` sampler: drop health checks by ``url.path``, sample the rest parent-based.

Server instrumentors pass ``http.request.method``, ``url.path``, ``url.scheme`` and
``server.address`` as start attributes, so a sampler sees them when the span starts (the only
time it is asked). A span whose ``url.path`` starts with one of the drop prefixes is dropped,
whatever its parent says, and so its children are too (they follow their parent); every other
span is decided by ``ParentBased(TraceIdRatioBased(ratio))``, the ``parentbased_traceidratio``
sampler.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

from telemetry_run.sdk import Decision, ParentBased, Sampler, SamplingResult, TraceIdRatioBased

if TYPE_CHECKING:
    from telemetry_run.context import Context
    from telemetry_run.sdk.trace.api import Attributes
    from telemetry_run.trace import Link, SpanKind, TraceState

__all__ = ["DEFAULT_RATIO", "RouteSampler", "parse_ratio"]

# A child of telemetry-run's logger: our lines get its "telemetry-run: " prefix, go to stderr,
# and follow OTEL_LOG_LEVEL like the built-in ones.
logger: Final = logging.getLogger("telemetry_run.example")

DEFAULT_RATIO: Final = 1.0
_DROP: Final = SamplingResult(Decision.DROP)


def parse_ratio(arg: str | None) -> float:
    """``OTEL_TRACES_SAMPLER_ARG`` as a ratio: 1.0 when unset; one warning and 1.0 if invalid."""
    if arg is None or not arg.strip():
        return DEFAULT_RATIO
    try:
        ratio = float(arg.strip())
    except ValueError:
        ratio = math.nan
    if not 0.0 <= ratio <= 1.0:  # NaN fails this too
        logger.warning(
            "OTEL_TRACES_SAMPLER_ARG=%r is not a ratio in [0, 1]; the route sampler uses the "
            "default (%s)",
            arg,
            DEFAULT_RATIO,
        )
        return DEFAULT_RATIO
    return ratio


class RouteSampler(Sampler):
    """Drops spans whose start attribute ``url.path`` starts with a drop prefix.

    Other spans follow their parent's sampled flag; a root is kept with probability ``ratio``
    (decided from the trace id, so every service agrees).
    """

    def __init__(self, drop_prefixes: Iterable[str] = ("/health",), ratio: float = 1.0) -> None:
        self.drop_prefixes = tuple(drop_prefixes)
        self.fallback = ParentBased(TraceIdRatioBased(ratio))

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
        if attributes and self.drop_prefixes:
            path = attributes.get("url.path")
            if isinstance(path, str) and path.startswith(self.drop_prefixes):
                return _DROP
        return self.fallback.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def description(self) -> str:
        prefixes = ",".join(self.drop_prefixes)
        return f"RouteSampler{{drop url.path:[{prefixes}],else:{self.fallback.description()}}}"
