"""The plugin module telemetry-run loads: hook implementations and cheap data, nothing else.

It runs at start-up in every instrumented process and in ``telemetry-run --list``, so it imports
only ``telemetry_run.plugin`` (whose names resolve on first use) and builds plain values: the
sampler module is imported when ``OTEL_TRACES_SAMPLER=route`` asks for it, and the instrumentor
module only after the application has imported ``tinyqueue``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from telemetry_run.plugin import InstrumentorSpec, InvalidValue, Variable, hookimpl, parse_list

if TYPE_CHECKING:
    from telemetry_run.plugin import Config, Sampler

__all__ = [
    "DROP_PREFIXES",
    "SAMPLER_NAME",
    "TINYQUEUE",
    "parse_prefixes",
    "telemetry_run_instrumentors",
    "telemetry_run_provides",
    "telemetry_run_sampler",
    "telemetry_run_variables",
]

#: The name users give ``OTEL_TRACES_SAMPLER``.
SAMPLER_NAME: Final = "route"

#: The variable holding the ``url.path`` prefixes the route sampler drops.
DROP_PREFIXES: Final = "TELEMETRY_RUN_EXAMPLE_DROP_PREFIXES"

TINYQUEUE: Final = InstrumentorSpec(
    name="tinyqueue",
    modules=("tinyqueue",),
    requires="telemetry-run-example>=0.1",  # tinyqueue ships in this distribution
    load="telemetry_run_example.instrumentor:TinyQueueInstrumentor",
    description="tinyqueue.Queue put/get as PRODUCER/CONSUMER spans, joined by W3C headers",
)


def parse_prefixes(raw: str) -> tuple[str, ...]:
    """A comma-separated list of path prefixes, each starting with ``/``."""
    prefixes = parse_list(raw)
    wrong = [prefix for prefix in prefixes if not prefix.startswith("/")]
    if wrong:
        # The registry turns this into one warning naming the variable, then the default.
        raise InvalidValue(f"has prefixes that do not start with '/': {', '.join(wrong)}")
    return prefixes


@hookimpl
def telemetry_run_variables() -> list[Variable]:
    return [
        Variable(
            DROP_PREFIXES,
            parse_prefixes,
            ("/health",),
            "url.path prefixes the route sampler drops (comma-separated)",
        )
    ]


@hookimpl
def telemetry_run_provides() -> dict[str, list[str]]:
    return {"sampler": [SAMPLER_NAME]}


@hookimpl
def telemetry_run_sampler(name: str, arg: str | None, config: Config) -> Sampler | None:
    if name != SAMPLER_NAME:
        return None
    from telemetry_run_example.sampler import RouteSampler, parse_ratio

    return RouteSampler(config[DROP_PREFIXES], parse_ratio(arg))


@hookimpl
def telemetry_run_instrumentors() -> list[InstrumentorSpec]:
    return [TINYQUEUE]
