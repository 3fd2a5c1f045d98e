"""docs/configuration.md's reference is what the config registry and the built-in specs say."""

from __future__ import annotations

import pytest

from telemetry_run import _env
from telemetry_run.config import BUILTIN_VARIABLES, Variable
from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.base import InstrumentorSpec
from tools import config_reference, readme_tables


def _row(table: str, name: str) -> list[str]:
    for line in table.splitlines():
        if line.startswith(f"| `{name}` |"):
            return [cell.strip() for cell in line.strip("|").split(" | ")]
    raise AssertionError(f"no row for {name}")


def test_the_configuration_reference_is_generated_from_the_registry() -> None:
    current = config_reference.DOCUMENT.read_text()
    assert config_reference.render(current) == current, (
        "docs/configuration.md differs from the registry: run python -m tools.config_reference"
    )


def test_it_has_a_row_for_every_variable_the_readme_lists() -> None:
    table = config_reference.table()
    readme = readme_tables.tables()["variables"]
    names = [line.split("`")[1] for line in readme.splitlines()[2:]]
    assert names == [line.split("`")[1] for line in table.splitlines()[2:]]
    assert len(names) == len(set(names))


def test_each_row_says_how_the_value_is_read_who_declares_it_and_whether_it_is_secret() -> None:
    table = config_reference.table()
    assert _row(table, "OTEL_BSP_MAX_QUEUE_SIZE") == [
        "`OTEL_BSP_MAX_QUEUE_SIZE`",
        "`2048`",
        "integer >= 1",
        "no",
        "core",
        "`DD_TRACE_WRITER_BUFFER_SIZE_BYTES` (bytes)",
        "spans waiting for export; a full queue drops and counts new spans",
    ]
    headers = _row(table, "OTEL_EXPORTER_OTLP_HEADERS")
    assert headers[3:5] == ["yes (masked)", "plugin `builtin-otlp`"]
    assert _row(table, "OTEL_EXPORTER_OTLP_PROTOCOL")[2] == (
        "one of `grpc`, `http/json`, `http/protobuf` (any case)"
    )
    assert _row(table, "OTEL_PYTHON_FLASK_EXCLUDED_URLS")[4] == "instrumentor `flask`"
    assert _row(table, "OTEL_PYTHON_EXCLUDED_URLS")[4] == "plugin `builtin-instrumentors`"
    # an endpoint's invalid value does not fall back to the default, and the page says so
    assert "Invalid: the OTLP exporter is off" in _row(table, "OTEL_EXPORTER_OTLP_ENDPOINT")[6]
    secrets = {v.name for v in BUILTIN_VARIABLES if v.secret}
    for name in secrets:
        assert _row(table, name)[3] == "yes (masked)"


def test_a_new_spec_brings_its_rows_and_the_check_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    own = Variable("TELEMETRY_RUN_ACME_RETRIES", _env.parse_int(0, 9), 3, "retries per call")
    acme = InstrumentorSpec(
        name="acme",
        modules=("acme",),
        requires="acme-client>=1.2,<2",
        load="telemetry_run.instrumentors.acme:AcmeInstrumentor",
        kind="http",
        variables=(own,),
    )
    monkeypatch.setattr(plugin, "SPECS", (*plugin.SPECS, acme))
    table = config_reference.table()
    assert _row(table, "TELEMETRY_RUN_ACME_RETRIES") == [
        "`TELEMETRY_RUN_ACME_RETRIES`",
        "`3`",
        "integer in [0, 9]",
        "no",
        "instrumentor `acme`",
        "-",
        "retries per call",
    ]
    assert _row(table, "OTEL_PYTHON_ACME_EXCLUDED_URLS")[4] == "instrumentor `acme`"
    assert config_reference.main(["--check"]) == 1


def test_a_parser_of_its_own_is_described_by_its_docstring() -> None:
    def parse_port(raw: str) -> int:
        """A TCP port, ``1`` to ``65535``.

        More that the page does not show.
        """
        return int(raw)

    assert config_reference.parsing_rule(Variable("X", parse_port, 1, "")) == (
        "a TCP port, `1` to `65535`"
    )
    assert config_reference.parsing_rule(Variable("X", lambda raw: raw, 1, "")) == (
        "see What it does"
    )


def test_a_document_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="no '<!-- generated: configuration"):
        config_reference.render("# Configuration\n", lambda: "| a |")
