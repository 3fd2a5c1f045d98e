"""An instrumentor's spec carries its variables: those of its kind, then its own."""

from __future__ import annotations

import types
from typing import Any

import pytest

from telemetry_run._env import parse_int
from telemetry_run.config import Config, Variable
from telemetry_run.hookspecs import hookimpl
from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors.base import InstrumentorSpec, ReleaseLine
from telemetry_run.testing import config_for

LEVEL = Variable("TELEMETRY_RUN_ACME_LEVEL", parse_int(0, 9), 3, "acme's level")


def _spec(**fields: Any) -> InstrumentorSpec:
    values: dict[str, Any] = {
        "name": "acme",
        "modules": ("acme",),
        "requires": "acme>=1",
        "load": "acme_instrumentor:AcmeInstrumentor",
    }
    values.update(fields)
    return InstrumentorSpec(**values)


def test_an_http_instrumentor_gets_its_own_excluded_urls_variable() -> None:
    spec = _spec(kind="http", variables=(LEVEL,))
    declared = spec.declared_variables()
    assert [v.name for v in declared] == ["OTEL_PYTHON_ACME_EXCLUDED_URLS", LEVEL.name]

    warnings: list[str] = []
    config = Config.from_env(
        {"OTEL_PYTHON_ACME_EXCLUDED_URLS": "/health$", "TELEMETRY_RUN_ACME_LEVEL": "7"},
        declared,
        warn=warnings.append,
    )
    assert warnings == []
    assert config[LEVEL.name] == 7
    settings = _http.HttpSettings.from_config(config, "acme", server=False)
    assert settings.is_excluded("http://h/health") and not settings.is_excluded("http://h/a")

    bad = Config.from_env(
        {"OTEL_PYTHON_ACME_EXCLUDED_URLS": "(unclosed"}, declared, warn=warnings.append
    )
    assert bad["OTEL_PYTHON_ACME_EXCLUDED_URLS"] == ()
    assert len(warnings) == 1 and "OTEL_PYTHON_ACME_EXCLUDED_URLS='(unclosed'" in warnings[0]


def test_other_kinds_bring_no_variable() -> None:
    assert _spec(kind="rpc").declared_variables() == ()
    assert _spec().declared_variables() == ()
    assert _spec(variables=(LEVEL,)).declared_variables() == (LEVEL,)


def test_a_malformed_spec_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        _spec(kind="database")
    with pytest.raises(TypeError, match=r"InstrumentorSpec\.variables holds 'ACME_LEVEL'"):
        _spec(variables=("ACME_LEVEL",))


def test_matrix_lines_given_as_text_are_release_lines_without_caveats() -> None:
    spec = _spec(matrix=(ReleaseLine("1.0", python="<3.13", companions=("x<2",)), "latest"))
    assert spec.matrix == (ReleaseLine("1.0", "<3.13", ("x<2",)), ReleaseLine("latest"))


def test_config_for_a_plugin_includes_its_instrumentors_variables() -> None:
    @hookimpl
    def telemetry_run_instrumentors() -> tuple[InstrumentorSpec, ...]:
        return (_spec(kind="http", variables=(LEVEL,)),)

    plugin = types.SimpleNamespace(telemetry_run_instrumentors=telemetry_run_instrumentors)
    config = config_for(plugin, {"TELEMETRY_RUN_ACME_LEVEL": "5"})
    assert config[LEVEL.name] == 5
    assert config["OTEL_PYTHON_ACME_EXCLUDED_URLS"] == ()
