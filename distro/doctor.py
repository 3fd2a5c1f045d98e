"""``telemetry-run --doctor [--json]``: would telemetry arrive, and if not, why.

The effective configuration with where each value came from (secrets masked as ``--list``
masks them), what each instrumentor would do in this environment and why, and, for each
configured exporter, a live check: the OTLP endpoint resolved, connected to, its TLS handshake
and certificate, the protocol the port really speaks, and a test span sent and acknowledged.
The exit code is 0 only when spans would reach somewhere; ``--json`` prints the same report
as one JSON object for scripts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from telemetry_run.sdk._printable import escape

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.plugins import Plugins

__all__ = ["EXIT_PROBLEM", "diagnose", "main", "render_text"]

EXIT_PROBLEM = 1
_USAGE = "usage: telemetry-run --doctor [--json]"

#: No configuration file is read: the environment is the whole configuration.
CONFIG_FILE = None


def main(args: Sequence[str], environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """The launcher's ``--doctor``: ``args`` are what followed it."""
    as_json = False
    for arg in args:
        if arg == "--json":
            as_json = True
        else:
            print(
                f"telemetry-run: --doctor takes only --json, not {escape(arg)} ({_USAGE})", file=err
            )
            return 2
    report = diagnose(environ)
    if as_json:
        import json

        out.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(render_text(report))
    return 0 if report["ok"] else EXIT_PROBLEM


def _source(config: Config, name: str) -> str:
    if name in config.invalid:
        return "environment (invalid: see the warnings)"
    if name in config.explicit:
        return "environment"
    return "default"


def _configuration(config: Config) -> list[dict[str, str]]:
    return [
        {"name": name, "value": value, "source": _source(config, name)}
        for name, value, _ in config.shown()
    ]


def _instrumentors(plugins: Plugins, config: Config) -> list[dict[str, Any]]:
    from telemetry_run.instrumentation import plan

    return [
        {
            "name": s.name,
            "plugin": s.plugin,
            "patches": list(s.modules),
            "library": s.distribution,
            "installed": s.installed_version,
            "supports": s.requires or None,
            "state": s.state,
            "reason": s.reason or None,
        }
        for s in plan(plugins.instrumentor_specs(), config)
    ]


def _blockers(config: Config) -> list[str]:
    """Settings that stop every span before any exporter: the SDK off, a sampler dropping all."""
    problems = []
    if config.sdk_disabled:
        problems.append("OTEL_SDK_DISABLED=true: no span is made")
    sampler = config["OTEL_TRACES_SAMPLER"]
    if sampler in ("always_off", "parentbased_always_off"):
        problems.append(f"OTEL_TRACES_SAMPLER={sampler}: no trace this process starts is kept")
    elif sampler in ("traceidratio", "parentbased_traceidratio"):
        from telemetry_run.sdk.trace.sampling import parse_ratio

        if parse_ratio(config["OTEL_TRACES_SAMPLER_ARG"]) == 0.0:
            problems.append(
                f"OTEL_TRACES_SAMPLER={sampler} with OTEL_TRACES_SAMPLER_ARG=0: no trace this "
                "process starts is kept"
            )
    if not config.traces_exporters:
        problems.append("OTEL_TRACES_EXPORTER=none: spans are not exported anywhere")
    return problems


def _exporter_report(name: str, config: Config, plugins: Plugins) -> dict[str, Any]:
    provider = plugins.provider_of("exporter", name)
    entry: dict[str, Any] = {"name": name, "plugin": provider}
    if provider is None:
        entry.update(ok=False, detail="no installed plugin provides an exporter of this name")
    elif name == "console" and provider == "builtin":
        entry.update(ok=True, detail="spans are printed on the process's standard output")
    elif name == "otlp" and provider == "builtin-otlp":
        entry.update(_otlp_report(config))
    else:
        entry.update(ok=True, detail=f"provided by the plugin {provider!r}: not checked here")
    return entry


def _otlp_report(config: Config) -> dict[str, Any]:
    from telemetry_run._endpoint_check import check_endpoint
    from telemetry_run._otlp import GENERAL, TRACES, otlp_settings

    settings = otlp_settings(config)
    protocol_from = next(
        (v for v in (TRACES + "PROTOCOL", GENERAL + "PROTOCOL") if config.is_set(v)), "default"
    )
    endpoint_from = next(
        (v for v in (TRACES + "ENDPOINT", GENERAL + "ENDPOINT") if config.is_set(v)), "default"
    )
    entry: dict[str, Any] = {
        "protocol": settings.protocol,
        "protocol_from": protocol_from,
        "endpoint": _shown_endpoint(settings.endpoint),
        "endpoint_from": endpoint_from,
    }
    if settings.off is not None:
        entry.update(ok=False, detail=settings.off, checks=[])
        return entry

    def make_exporter() -> Any:
        if settings.protocol == "grpc":
            from telemetry_run.sdk.exporters.otlp.grpc import OTLPGrpcSpanExporter

            return OTLPGrpcSpanExporter(
                settings.endpoint, insecure=settings.insecure, **settings.exporter_kwargs()
            )
        from telemetry_run.sdk.exporters.otlp.http import OTLPHttpSpanExporter

        return OTLPHttpSpanExporter(
            settings.endpoint, protocol=settings.protocol, **settings.exporter_kwargs()
        )

    steps = check_endpoint(settings, make_exporter, lambda: _test_span(config))
    failed = [s for s in steps if s.ok is False]
    entry.update(
        ok=not failed,
        detail=failed[0].detail if failed else "a test span was sent and acknowledged",
        checks=[s.as_json() for s in steps],
    )
    return entry


def _shown_endpoint(endpoint: str) -> str:
    from telemetry_run.sdk.exporters.otlp._common import safe_endpoint

    return safe_endpoint(endpoint) if endpoint else ""


def _test_span(config: Config) -> Any:
    """One ended span named ``telemetry-run doctor``, with this service's resource."""
    from telemetry_run.sdk import InMemorySpanExporter, SimpleSpanProcessor
    from telemetry_run.sdk.resources import Resource
    from telemetry_run.sdk.trace.provider import TracerProvider

    attributes: dict[str, Any] = dict(config["OTEL_RESOURCE_ATTRIBUTES"])
    if config["OTEL_SERVICE_NAME"]:
        attributes["service.name"] = config["OTEL_SERVICE_NAME"]
    recorder = InMemorySpanExporter()
    provider = TracerProvider(Resource.create(attributes), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    provider.get_tracer("telemetry_run.doctor").start_span("telemetry-run doctor").end()
    (span,) = recorder.get_finished_spans()
    return span


def diagnose(environ: Mapping[str, str]) -> dict[str, Any]:
    """The whole report as plain data (what ``--json`` prints)."""
    from telemetry_run._version import __version__
    from telemetry_run.config import Config
    from telemetry_run.listing import _Capture, _missing_components
    from telemetry_run.plugins import Plugins
    from telemetry_run.sdk import _native

    captured: list[str] = []
    handler = _Capture(captured)
    logger = logging.getLogger("telemetry_run")
    logger.addHandler(handler)
    saved_propagate, saved_level = logger.propagate, logger.level
    logger.propagate = False  # the report carries them; nothing else printed on the way
    logger.setLevel(logging.WARNING)
    try:
        plugins = Plugins.load()
        config = Config.from_env(environ, plugins.variables(), warn=captured.append)
        instrumentors = _instrumentors(plugins, config)
        blockers = _blockers(config)
        exporters = (
            [_exporter_report(name, config, plugins) for name in config.traces_exporters]
            if not config.sdk_disabled
            else []
        )
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved_propagate
        logger.setLevel(saved_level)
    captured += _missing_components(config, plugins.provides())
    problems = list(blockers)
    problems += [f"exporter {e['name']}: {e['detail']}" for e in exporters if not e["ok"]]
    delivering = [e for e in exporters if e["ok"]]
    return {
        "ok": not blockers and bool(delivering) and len(delivering) == len(exporters),
        "version": __version__,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "config_file": CONFIG_FILE,
        # Whether the native twins of the hot paths load (the Python ones run otherwise).
        "native_speedups": {
            "loaded": _native.speedups is not None,
            "path": getattr(_native.speedups, "__file__", None),
            "error": _native.error,
        },
        "configuration": _configuration(config),
        "instrumentors": instrumentors,
        "exporters": exporters,
        "warnings": [escape(w, None) for w in dict.fromkeys(captured)],
        "problems": [escape(p, None) for p in problems],
    }


def _mark(ok: bool | None) -> str:
    return {True: "ok  ", False: "FAIL", None: "-   "}[ok]


def render_text(report: Mapping[str, Any]) -> str:
    """The report for a person: sections, one line per fact, the verdict last."""
    from telemetry_run.listing import _table

    native = report["native_speedups"]
    lines = [
        f"telemetry-run {report['version']} on Python {report['python']} ({report['executable']})",
        f"Native speedups: loaded ({escape(str(native['path']), None)})"
        if native["loaded"]
        else f"Native speedups: not loaded ({escape(str(native['error']), None)}); the Python "
        "code runs (a C compiler at install builds them)",
        "",
        "Configuration (environment variables; no configuration file is read):",
    ]
    lines += _table(
        [("variable", "value", "from")]
        + [(c["name"], c["value"], c["source"]) for c in report["configuration"]]
    )
    lines += ["", "Instrumentors (what each would patch when the application imports it):"]
    lines += _table(
        [("name", "patches", "library", "installed", "state")]
        + [
            (
                i["name"],
                ",".join(i["patches"]) or "-",
                i["library"] or "-",
                i["installed"] or "-",
                i["state"] + (f": {i['reason']}" if i["reason"] else ""),
            )
            for i in report["instrumentors"]
        ]
    )
    lines += ["", "Exporters:"]
    if not report["exporters"]:
        lines.append("  (none)")
    for exporter in report["exporters"]:
        lines.append(
            f"  {exporter['name']} ({exporter['plugin'] or 'not installed'}): "
            f"{'ok' if exporter['ok'] else 'FAIL'}: {escape(exporter['detail'], None)}"
        )
        if "endpoint" in exporter:
            lines.append(
                f"    endpoint {exporter['endpoint']} (from {exporter['endpoint_from']}), "
                f"protocol {exporter['protocol']} (from {exporter['protocol_from']})"
            )
        for step in exporter.get("checks", ()):
            lines.append(
                f"    {_mark(step['ok'])} {step['check']:<10} {escape(step['detail'], None)}"
            )
    if report["warnings"]:
        lines += ["", "Warnings:"] + [f"  {w}" for w in report["warnings"]]
    lines.append("")
    if report["ok"]:
        lines.append("Verdict: telemetry would arrive.")
    else:
        lines.append("Verdict: telemetry would NOT arrive:")
        lines += [f"  - {p}" for p in report["problems"]]
    return "\n".join(lines) + "\n"
