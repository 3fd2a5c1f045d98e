"""The README's generated tables, from the built-in plugins and their instrumentor specs.

``python -m tools.readme_tables`` rewrites every table between its markers in README.md;
``--check`` changes nothing and exits 1, printing the difference, when README.md is not what
the specs say (tests/unit/test_readme_tables.py runs that check). The variables table is the
registry in the order ``telemetry-run --list`` shows it; the instrumentors table has one row
per built-in spec. Third-party plugins installed beside us never reach the README.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from telemetry_run.config import BUILTIN_VARIABLES, Variable
from telemetry_run.instrumentors.base import InstrumentorSpec, ReleaseLine
from telemetry_run.plugins import Plugins

README: Final = Path(__file__).resolve().parent.parent / "README.md"
BEGIN: Final = "<!-- generated: {} (python -m tools.readme_tables) -->"
END: Final = "<!-- end of generated: {} -->"


def _builtin_plugins() -> Plugins:
    """The built-in plugins as the launcher registers them, and nothing installed beside us."""
    ours = [
        ep
        for ep in importlib.metadata.entry_points(group="telemetry_run")
        if ep.value.startswith("telemetry_run.")
    ]
    return Plugins.load(ours)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def variables_table(variables: Sequence[Variable]) -> str:
    """One row per variable: name, default as ``--list`` prints it, what it does."""
    return _rows(
        ("Variable", "Default", "What it does"),
        [(f"`{v.name}`", f"`{v.default_text()}`", v.doc) for v in variables],
    )


def _line_text(line: ReleaseLine) -> str:
    caveats = [f"Python {line.python}"] if line.python else []
    caveats += [f"with `{pin}`" for pin in line.companions]
    shown = ", ".join(caveats)
    return f"{line.version} ({shown})" if shown else line.version


def instrumentors_table(specs: Sequence[InstrumentorSpec]) -> str:
    """One row per spec: name, requirement, the release lines tested, what it records."""
    return _rows(
        ("name", "supported", "tested release lines", "what it records"),
        [
            (
                f"`{spec.name}`",
                f"`{spec.requires}`" if spec.requires else "(standard library)",
                ", ".join(_line_text(line) for line in spec.matrix) or "-",
                spec.description,
            )
            for spec in specs
        ],
    )


def tables() -> dict[str, str]:
    """Each generated table by the name its markers carry."""
    plugins = _builtin_plugins()
    if plugins.failures:
        raise RuntimeError(f"a built-in plugin failed: {plugins.failures}")
    specs = [spec for _, spec in plugins.instrumentor_specs()]
    registry = {v.name: v for v in BUILTIN_VARIABLES}
    for variable in [*plugins.variables(), *(v for s in specs for v in s.declared_variables())]:
        registry.setdefault(variable.name, variable)  # as Config.from_env: the first one wins
    return {
        "variables": variables_table(list(registry.values())),
        "instrumentors": instrumentors_table(specs),
    }


def render(readme: str, generated: Callable[[], dict[str, str]] = tables) -> str:
    """``readme`` with each marked table replaced by what the specs say."""
    for name, table in generated().items():
        begin, end = BEGIN.format(name), END.format(name)
        head, found, rest = readme.partition(begin + "\n")
        _, found_end, tail = rest.partition(end)
        if not (found and found_end):
            raise ValueError(f"README.md has no {begin!r} ... {end!r} markers")
        readme = f"{head}{begin}\n{table}\n{end}{tail}"
    return readme


def main(argv: Sequence[str]) -> int:
    current = README.read_text()
    wanted = render(current)
    if "--check" in argv:
        if wanted == current:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(True), wanted.splitlines(True), "README.md", "generated"
        )
        sys.stdout.writelines(diff)
        print("README.md differs from the specs: run python -m tools.readme_tables")
        return 1
    if wanted != current:
        README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
