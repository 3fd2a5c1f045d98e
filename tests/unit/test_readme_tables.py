"""The README's variables and instrumentors tables are what the specs and the registry say."""

from __future__ import annotations

import pytest

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.base import InstrumentorSpec, ReleaseLine
from tools import readme_tables


def test_the_readme_tables_are_generated_from_the_specs() -> None:
    current = readme_tables.README.read_text()
    assert readme_tables.render(current) == current, (
        "README.md differs from the specs: run python -m tools.readme_tables"
    )


def test_a_new_spec_is_a_new_row_and_brings_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    acme = InstrumentorSpec(
        name="acme",
        modules=("acme",),
        requires="acme-client>=1.2,<2",
        load="telemetry_run.instrumentors.acme:AcmeInstrumentor",
        description="a CLIENT span per call",
        kind="http",
        matrix=(ReleaseLine("1.2", python=">=3.12"), "latest"),
    )
    monkeypatch.setattr(plugin, "SPECS", (*plugin.SPECS, acme))
    tables = readme_tables.tables()
    assert (
        "| `acme` | `acme-client>=1.2,<2` | 1.2 (Python >=3.12), latest | a CLIENT span per call |"
    ) in tables["instrumentors"].splitlines()
    assert (
        "| `OTEL_PYTHON_ACME_EXCLUDED_URLS` | `(unset)` "
        "| as OTEL_PYTHON_EXCLUDED_URLS, for acme only (wins over it) |"
    ) in tables["variables"].splitlines()
    current = readme_tables.README.read_text()
    assert readme_tables.render(current) != current  # the drift test above would fail
    assert readme_tables.main(["--check"]) == 1


def test_a_table_cell_cannot_break_the_table() -> None:
    spec = InstrumentorSpec("x", ("x",), "", "x:X", "reads a | b")
    row = readme_tables.instrumentors_table([spec]).splitlines()[-1]
    assert row == "| `x` | (standard library) | - | reads a \\| b |"


def test_a_readme_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="no '<!-- generated: variables"):
        readme_tables.render("# a README\n", lambda: {"variables": "| a |"})
