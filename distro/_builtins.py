"""The built-in exporters, samplers and propagators, as an ordinary plugin.

They answer the same hooks a third-party plugin does (and a plugin answering the same name
wins). ``--list`` loads this module in the launcher, which must not import the SDK, so the SDK
classes are imported inside the hooks, when something is actually built.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from telemetry_run.hookspecs import hookimpl
from telemetry_run.sdk._log import logger
from telemetry_run.sdk._printable import quote

if TYPE_CHECKING:
    from telemetry_run.sdk.exporters import SpanExporter
    from telemetry_run.sdk.propagation import TextMapPropagator
    from telemetry_run.sdk.trace.sampling import Sampler

__all__ = [
    "EXPORTERS",
    "PROPAGATORS",
    "SAMPLERS",
    "parse_ratio",
    "telemetry_run_propagator",
    "telemetry_run_provides",
    "telemetry_run_sampler",
    "telemetry_run_span_exporter",
]


# "none" builds nothing (the configuration drops it) but is a name users may write.
EXPORTERS: Final = ("console", "none")
SAMPLERS: Final = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
PROPAGATORS: Final = ("tracecontext", "baggage", "none")


@hookimpl
def telemetry_run_provides() -> dict[str, tuple[str, ...]]:
    return {"exporter": EXPORTERS, "sampler": SAMPLERS, "propagator": PROPAGATORS}


@hookimpl
def telemetry_run_span_exporter(name: str) -> SpanExporter | None:
    if name == "console":
        from telemetry_run.sdk.exporters.console import ConsoleSpanExporter

        return ConsoleSpanExporter()
    return None


def parse_ratio(arg: str | None) -> float:
    """``OTEL_TRACES_SAMPLER_ARG`` as a ratio: 1.0 when unset; one warning and 1.0 when invalid."""
    if arg is None or not arg.strip():
        return 1.0
    try:
        ratio = float(arg.strip())
    except ValueError:
        ratio = math.nan
    if not 0.0 <= ratio <= 1.0:  # NaN fails too
        logger.warning(
            "OTEL_TRACES_SAMPLER_ARG=%s is not a ratio in [0, 1]; using the default (1.0)",
            quote(arg),
        )
        return 1.0
    return ratio


@hookimpl
def telemetry_run_sampler(name: str, arg: str | None) -> Sampler | None:
    if name not in SAMPLERS:
        return None
    from telemetry_run.sdk.trace import sampling

    if name == "always_on":
        return sampling.ALWAYS_ON
    if name == "always_off":
        return sampling.ALWAYS_OFF
    if name == "parentbased_always_on":
        return sampling.ParentBased(sampling.ALWAYS_ON)
    if name == "parentbased_always_off":
        return sampling.ParentBased(sampling.ALWAYS_OFF)
    ratio = parse_ratio(arg)
    if name == "traceidratio":
        return sampling.TraceIdRatioBased(ratio)
    return sampling.ParentBasedTraceIdRatio(ratio)


@hookimpl
def telemetry_run_propagator(name: str) -> TextMapPropagator | None:
    if name == "tracecontext":
        from telemetry_run.sdk.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )

        return TraceContextTextMapPropagator()
    if name == "baggage":
        from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator

        return W3CBaggagePropagator()
    return None
