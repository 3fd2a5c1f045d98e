"""A third-party instrumentor's spec gets what a built-in one gets: its variables in the
registry of every process under the launcher, and its line in ``--list``."""

from __future__ import annotations

from tests.integration.conftest import PYTHON, FakeDistribution, clean_env, launch

ACME_PLUGIN = """
import sys

from telemetry_run.plugin import InstrumentorSpec, Variable, hookimpl, parse_int

LEVEL = Variable("TELEMETRY_RUN_ACME_LEVEL", parse_int(0, 9), 3, "acme's level")

@hookimpl
def telemetry_run_instrumentors():
    return [
        InstrumentorSpec(
            name="acme",
            modules=("acme_client_never_imported",),
            requires="",
            load="acme_plugin:AcmeInstrumentor",
            description="a CLIENT span per acme call",
            kind="http",
            variables=(LEVEL,),
        )
    ]

@hookimpl
def telemetry_run_configure(config, tracer_provider):
    print("acme sees", config["TELEMETRY_RUN_ACME_LEVEL"],
          config["OTEL_PYTHON_ACME_EXCLUDED_URLS"], file=sys.stderr)
"""


def test_a_plugins_spec_variables_are_read_in_the_app_process(
    plugins_dir: FakeDistribution,
) -> None:
    plugins_dir.add("acme_plugin", ACME_PLUGIN)
    env = clean_env(
        PYTHONPATH=str(plugins_dir.root),
        TELEMETRY_RUN_ACME_LEVEL="7",
        OTEL_PYTHON_ACME_EXCLUDED_URLS="/health$",
    )
    result = launch([PYTHON, "-c", "pass"], env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "acme sees 7 ('/health$',)\n"

    bad = launch([PYTHON, "-c", "pass"], env | {"OTEL_PYTHON_ACME_EXCLUDED_URLS": "(unclosed"})
    assert bad.returncode == 0, bad.stderr
    warnings = [ln for ln in bad.stderr.splitlines() if "OTEL_PYTHON_ACME_EXCLUDED_URLS" in ln]
    assert len(warnings) == 1 and "'(unclosed'" in warnings[0], bad.stderr
    assert "acme sees 7 ()" in bad.stderr  # the documented default


def test_list_shows_a_plugins_instrumentor_with_its_description_and_variables(
    plugins_dir: FakeDistribution,
) -> None:
    plugins_dir.add("acme_plugin", ACME_PLUGIN)
    env = clean_env(PYTHONPATH=str(plugins_dir.root), TELEMETRY_RUN_ACME_LEVEL="7")
    result = launch(["--list"], env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        "  acme: a CLIENT span per acme call "
        "(OTEL_PYTHON_ACME_EXCLUDED_URLS, TELEMETRY_RUN_ACME_LEVEL)\n"
    ) in out
    assert "  acme  " in out.split("What each records")[0]  # its row in the table
    assert "* TELEMETRY_RUN_ACME_LEVEL" in out.split("Configuration")[1]
