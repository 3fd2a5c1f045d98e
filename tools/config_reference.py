"""docs/configuration.md's reference table, from the config registry and the built-in plugins.

``python -m tools.config_reference`` rewrites the table between its markers in
docs/configuration.md; ``--check`` changes nothing and exits 1, printing the difference, when the
document is not what the registry says (tests/unit/test_config_reference.py runs that check).
The rows are the registry in the order ``telemetry-run --list`` and the README show it (the
same first-declaration-wins rule as ``Config.from_env``), each with where it is declared, how its
value is parsed, whether it is secret, and ddtrace's name for the same setting where it has one.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from telemetry_run import _env
from telemetry_run.config import BUILTIN_VARIABLES, Variable
from telemetry_run.plugins import Plugins
from tools import readme_tables

DOCUMENT: Final = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
BEGIN: Final = "<!-- generated: configuration (python -m tools.config_reference) -->"
END: Final = "<!-- end of generated: configuration -->"

#: ddtrace's variable for the same setting, where it has one (tests/unit/test_config_reference.py
#: checks each name is in the installed ddtrace). The OTEL_* names are the specification's or
#: opentelemetry-python-contrib's, which opentelemetry-instrument reads under the same names.
DDTRACE_NAMES: Final[dict[str, tuple[str, str]]] = {
    "OTEL_SDK_DISABLED": ("DD_TRACE_ENABLED", "inverted"),
    "OTEL_SERVICE_NAME": ("DD_SERVICE", ""),
    "OTEL_RESOURCE_ATTRIBUTES": ("DD_TAGS", ""),
    "OTEL_PROPAGATORS": ("DD_TRACE_PROPAGATION_STYLE", ""),
    "OTEL_TRACES_SAMPLER_ARG": ("DD_TRACE_SAMPLE_RATE", ""),
    "OTEL_BSP_SCHEDULE_DELAY": ("DD_TRACE_WRITER_INTERVAL_SECONDS", "seconds"),
    "OTEL_BSP_MAX_QUEUE_SIZE": ("DD_TRACE_WRITER_BUFFER_SIZE_BYTES", "bytes"),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("DD_TRACE_AGENT_URL", "its agent, not OTLP"),
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ("DD_PATCH_MODULES", "module:false"),
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": ("DD_TRACE_HEADER_TAGS", ""),
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": ("DD_TRACE_HEADER_TAGS", ""),
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": ("DD_TRACE_HEADER_TAGS", ""),
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE": ("DD_TRACE_HEADER_TAGS", ""),
    "TELEMETRY_RUN_HTTP_SENSITIVE_QUERY_KEYS": (
        "DD_TRACE_OBFUSCATION_QUERY_STRING_REGEXP",
        "one regex",
    ),
    "TELEMETRY_RUN_DEBUG": ("DD_TRACE_DEBUG", ""),
}

_PARSERS: Final[dict[Callable[[str], object], str]] = {
    _env.parse_bool: "`true` or `false` (any case)",
    _env.parse_str: "text, as given",
    _env.parse_list: "comma-separated names (blanks and repeats dropped)",
    _env.parse_key_values: "`k=v,k2=v2`, percent-encoded; one bad member voids the whole value",
    _env.parse_duration_ms: "integer milliseconds, >= 0",
    _env.parse_timeout_ms: "integer milliseconds, >= 0 (0: no limit)",
}


def parsing_rule(variable: Variable) -> str:
    """How ``variable``'s text is read, from its parser: the shared parsers by what they accept,
    the integer and enumeration parsers with their bounds and choices, others by docstring."""
    parse = variable.parse
    known = _PARSERS.get(parse)
    if known is not None:
        return known
    closure = dict(
        zip(
            parse.__code__.co_freevars,
            (cell.cell_contents for cell in parse.__closure__ or ()),
            strict=True,
        )
    )
    if parse.__qualname__ == "parse_int.<locals>.parse":
        low, high = closure["minimum"], closure["maximum"]
        return f"integer >= {low}" if high == 2**31 - 1 else f"integer in [{low}, {high}]"
    if parse.__qualname__ == "parse_enum.<locals>.parse":
        return "one of " + ", ".join(f"`{c}`" for c in sorted(closure["allowed"])) + " (any case)"
    first_line = (parse.__doc__ or "").strip().split("\n", 1)[0].rstrip(".").replace("``", "`")
    return first_line[:1].lower() + first_line[1:] if first_line else "see What it does"


def _declared_by() -> dict[str, str]:
    """Variable name -> who declares it (the first declaration, as ``Config.from_env`` keeps)."""
    where = {v.name: "core" for v in BUILTIN_VARIABLES}
    ours = [
        ep
        for ep in importlib.metadata.entry_points(group="telemetry_run")
        if ep.value.startswith("telemetry_run.")
    ]
    for ep in ours:  # one at a time, to name the plugin of each variable
        for variable in Plugins.load([ep]).variables():
            where.setdefault(variable.name, f"plugin `{ep.name}`")
    for _, spec in readme_tables._builtin_plugins().instrumentor_specs():
        for variable in spec.declared_variables():
            where.setdefault(variable.name, f"instrumentor `{spec.name}`")
    return where


def _registry() -> list[Variable]:
    plugins = readme_tables._builtin_plugins()
    if plugins.failures:
        raise RuntimeError(f"a built-in plugin failed: {plugins.failures}")
    specs = [spec for _, spec in plugins.instrumentor_specs()]
    registry = {v.name: v for v in BUILTIN_VARIABLES}
    for variable in [*plugins.variables(), *(v for s in specs for v in s.declared_variables())]:
        registry.setdefault(variable.name, variable)
    return list(registry.values())


def _ddtrace_cell(name: str) -> str:
    if name not in DDTRACE_NAMES:
        return "-"
    peer, note = DDTRACE_NAMES[name]
    return f"`{peer}` ({note})" if note else f"`{peer}`"


_HEADER: Final = (
    "Variable",
    "Default",
    "Accepted values",
    "Secret",
    "Declared by",
    "ddtrace",
    "What it does",
)


def reference_table(variables: Sequence[Variable], declared_by: dict[str, str]) -> str:
    """One row per variable: name, default, parsing, secret, declared by, ddtrace, what it does."""
    return readme_tables._rows(
        _HEADER,
        [
            (
                f"`{v.name}`",
                f"`{v.default_text()}`",
                parsing_rule(v),
                "yes (masked)" if v.secret else "no",
                declared_by.get(v.name, "?"),
                _ddtrace_cell(v.name),
                v.doc if v.when_invalid is None else f"{v.doc}. Invalid: {v.when_invalid}",
            )
            for v in variables
        ],
    )


def table() -> str:
    return reference_table(_registry(), _declared_by())


def render(document: str, generated: Callable[[], str] = table) -> str:
    """``document`` with the marked table replaced by what the registry says."""
    head, found, rest = document.partition(BEGIN + "\n")
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise ValueError(f"docs/configuration.md has no {BEGIN!r} ... {END!r} markers")
    return f"{head}{BEGIN}\n{generated()}\n{END}{tail}"


def main(argv: Sequence[str]) -> int:
    current = DOCUMENT.read_text()
    wanted = render(current)
    if "--check" in argv:
        if wanted == current:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(True), wanted.splitlines(True), "docs/configuration.md", "generated"
        )
        sys.stdout.writelines(diff)
        print(f"{DOCUMENT.name} differs from the registry: run python -m tools.config_reference")
        return 1
    if wanted != current:
        DOCUMENT.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
