"""``telemetry-run --list``: what would be instrumented, by which plugin, and why not.

The answer to "why is nothing showing up?" without reading our source: every instrumentor with
its plugin, target library, installed version, supported range and state, then what it records
and the variables only it reads (from its spec, a third-party one too); every exporter,
sampler and propagator name with the plugin that provides it; plugins that failed to load;
whether the native speedups load; and the effective configuration with secrets masked.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from telemetry_run.sdk._printable import escape

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.instrumentation import InstrumentorStatus

__all__ = ["render"]


def _table(rows: Sequence[tuple[str, ...]], indent: str = "  ") -> list[str]:
    if not rows:
        return [f"{indent}(none)"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render(environ: Mapping[str, str]) -> str:
    """The whole report as text (the launcher prints it and exits 0)."""
    from telemetry_run._version import __version__
    from telemetry_run.config import Config
    from telemetry_run.instrumentation import plan
    from telemetry_run.plugins import Plugins

    captured: list[str] = []
    handler = _Capture(captured)
    logger = logging.getLogger("telemetry_run")
    logger.addHandler(handler)
    try:
        plugins = Plugins.load()
        specs = plugins.instrumentor_specs()
        variables = [*plugins.variables(), *(v for _, s in specs for v in s.declared_variables())]
        config = Config.from_env(environ, variables, warn=captured.append)
        statuses = plan(specs, config)
        if "otlp" in config.traces_exporters and plugins.provider_of("exporter", "otlp") == (
            "builtin-otlp"
        ):
            from telemetry_run._otlp import otlp_settings

            # What only building the exporter finds (an endpoint OTLP/HTTP cannot use, an
            # encrypted client key) is logged: the report's warnings carry it.
            otlp_settings(config)
    finally:
        logger.removeHandler(handler)

    lines = [
        f"telemetry-run {__version__} on Python {sys.version.split()[0]} ({sys.executable})",
        _native_line(),
        "",
        "Instrumentors:",
    ]
    if statuses:
        lines += _table(
            [("name", "plugin", "library", "installed", "supports", "state")]
            + [
                (
                    s.name,
                    s.plugin,
                    s.distribution or "-",
                    s.installed_version or "-",
                    s.requires or "-",
                    s.state + (f": {s.reason}" if s.reason else ""),
                )
                for s in statuses
            ]
        )
        lines += ["", "What each records (and the variables only it reads):"]
        lines += [f"  {escape(line, None)}" for line in _records(statuses)]
    else:
        lines.append("  (none installed)")
    lines += ["", "Exporters, samplers and propagators (name: plugin):"]
    provides = plugins.provides()
    for kind in ("exporter", "sampler", "propagator"):
        names = provides.get(kind, {})
        shown = ", ".join(f"{name}: {plugin}" for name, plugin in sorted(names.items()))
        lines.append(f"  {kind}s: {shown or '(none)'}")
    lines += ["", "Plugins that failed to load:"]
    lines += [f"  {escape(f.name)}: {escape(f.error, None)}" for f in plugins.failures] or [
        "  (none)"
    ]
    lines += ["", "Configuration (* = set in the environment):"]
    lines += _table(
        [(("* " if explicit else "  ") + name, value) for name, value, explicit in config.shown()]
    )
    captured += _missing_components(config, provides)
    if captured:
        lines += ["", "Warnings:"] + [f"  {escape(message, None)}" for message in captured]
    return "\n".join(lines) + "\n"


def _native_line() -> str:
    """Whether the native twins of the hot paths (``sdk/_speedups.c``) were built and load."""
    from telemetry_run.sdk import _native

    if _native.speedups is None:
        return (
            f"Native speedups: not loaded ({escape(str(_native.error), None)}); the Python code "
            "runs (a C compiler at install builds them)"
        )
    return f"Native speedups: loaded ({escape(str(_native.speedups.__file__), None)})"


def _records(statuses: Sequence[InstrumentorStatus]) -> list[str]:
    """``name: description (VARIABLE, ...)`` of each instrumentor, from its spec."""
    lines = []
    for status in statuses:
        spec = status.spec
        if spec is None:
            continue
        names = ", ".join(variable.name for variable in spec.declared_variables())
        text = f"{spec.name}: {spec.description or '(no description)'}"
        lines.append(f"{text} ({names})" if names else text)
    return lines


def _missing_components(config: Config, provides: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Configured names no installed plugin provides: the usual cause of 'no spans arrive'."""
    wanted = [
        ("OTEL_TRACES_EXPORTER", "exporter", config.traces_exporters),
        ("OTEL_TRACES_SAMPLER", "sampler", (config["OTEL_TRACES_SAMPLER"],)),
        ("OTEL_PROPAGATORS", "propagator", config.propagators),
    ]
    return [
        f"{variable} names {name!r}, which no installed plugin provides"
        for variable, kind, names in wanted
        for name in names
        if name not in provides.get(kind, {})
    ]


class _Capture(logging.Handler):
    """Keeps log messages for the report instead of printing them."""

    def __init__(self, into: list[str]):
        super().__init__()
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        self._into.append(record.getMessage())
