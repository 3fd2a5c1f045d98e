"""The built-in exporters, samplers and propagators, as an ordinary plugin.

They answer the same hooks a third-party plugin does (and a plugin answering the same name
wins). ``--list`` loads this module in the launcher, which must not import the SDK's tracing,
so the SDK classes are imported inside the hooks, when something is actually built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from telemetry_run.hookspecs import hookimpl

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.exporters import SpanExporter
    from telemetry_run.sdk.propagation import TextMapPropagator
    from telemetry_run.sdk.trace.sampling import Sampler

__all__ = [
    "EXPORTERS",
    "PROPAGATORS",
    "SAMPLERS",
    "telemetry_run_propagator",
    "telemetry_run_provides",
    "telemetry_run_sampler",
    "telemetry_run_span_exporter",
]


# "none" builds nothing (the configuration drops it) but is a name users may write.
EXPORTERS: Final = ("console", "none")
# The specification's names, which ``telemetry_run.sdk.trace.sampling.sampler_named`` builds.
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
def telemetry_run_span_exporter(name: str, config: Config) -> SpanExporter | None:
    if name == "console":
        from telemetry_run.sdk.exporters.console import ConsoleSpanExporter

        form = config.get("TELEMETRY_RUN_CONSOLE_FORMAT", "waterfall")
        return ConsoleSpanExporter(
            json=form == "json",
            waterfall=form == "waterfall",
            color=False if config.get("NO_COLOR") else None,  # None: only on a terminal
        )
    return None


@hookimpl
def telemetry_run_sampler(name: str, arg: str | None) -> Sampler | None:
    if name not in SAMPLERS:
        return None  # never import the SDK for a name another plugin answers
    from telemetry_run.sdk.trace.sampling import sampler_named

    return sampler_named(name, arg)


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
