"""What every instrumented start-up leaves out, and that leaving it out changes nothing.

The bootstrap runs in each Python process the launcher starts, so it imports neither
``dataclasses`` (our records are plain classes), ``logging`` (configured when something imports
it), ``urllib.parse``, ``json``, ``traceback`` nor ``concurrent.futures`` unless the settings
need them; these tests pin that, and that records, log lines and warnings are as before.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from telemetry_run.bootstrap import Bootstrapped
from telemetry_run.config import Config, Variable
from telemetry_run.instrumentation import InstrumentorStatus
from telemetry_run.instrumentors.base import InstrumentorSpec
from telemetry_run.plugins import PluginFailure
from telemetry_run.sdk import _log
from telemetry_run.sdk.exporters import ExportResult
from telemetry_run.sdk.trace.limits import SpanLimits

LEFT_OUT = (
    "dataclasses",
    "logging",
    "urllib.parse",
    "json",
    "traceback",
    "concurrent.futures",
    "ipaddress",
    "string",
)


def _child(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_RUN"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=clean | env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


_BOOT = """
import json, sys
before = set(sys.modules)
from telemetry_run.bootstrap import run_once
state = run_once()
assert state is not None and state.provider is not None, state
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize("exporter", ["otlp", "console", "none"])
def test_a_default_bootstrap_leaves_the_heavy_modules_out(exporter: str) -> None:
    out = _child(_BOOT, OTEL_TRACES_EXPORTER=exporter)
    imported = set(json.loads(out.stdout))
    assert not imported & set(LEFT_OUT), sorted(imported & set(LEFT_OUT))
    assert out.stderr == ""


def test_a_configured_grpc_endpoint_needs_no_urllib() -> None:
    out = _child(_BOOT, OTEL_EXPORTER_OTLP_ENDPOINT="http://collector.example:4317")
    assert "urllib.parse" not in json.loads(out.stdout)


_SITECUSTOMIZE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    "sitecustomize",
)


def test_our_sitecustomize_imports_importlib_util_only_to_chain_a_users_one(
    tmp_path: Path,
) -> None:
    # -S: no site, so no editable finder has imported importlib.util before us.
    code = (
        "import sys\n"
        f"sys.path[:0] = [{_SITECUSTOMIZE_DIR!r}]\n"
        "sys.path += sys.argv[1:]\n"
        "import sitecustomize\n"
        "import builtins\n"
        "print('importlib.util' in sys.modules, getattr(builtins, 'USER_SITE_RAN', False))\n"
    )
    # cwd: not the repo root, whose sitecustomize/ package would be found as a user's one.
    alone = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert alone.stdout.split() == ["False", "False"], alone.stderr
    user = tmp_path / "user"
    user.mkdir()
    (user / "sitecustomize.py").write_text("import builtins\nbuiltins.USER_SITE_RAN = True\n")
    chained = subprocess.run(
        [sys.executable, "-S", "-c", code, str(user)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert chained.stdout.split() == ["True", "True"], chained.stderr


def test_logging_is_configured_when_the_application_imports_it() -> None:
    code = """
import sys
from telemetry_run.bootstrap import run_once
run_once()
assert "logging" not in sys.modules
import logging
ours = logging.getLogger("telemetry_run")
print(ours.level, ours.propagate, [type(h).__name__ for h in ours.handlers])
print(ours.handlers[0].stream is sys.stderr, ours.handlers[0].formatter._fmt)
logging.getLogger("telemetry_run.my_plugin").warning("from a plugin %d", 1)
"""
    out = _child(code, OTEL_TRACES_EXPORTER="none", OTEL_LOG_LEVEL="warn")
    assert out.stdout.splitlines() == [
        "30 False ['StreamHandler']",
        "True telemetry-run: %(message)s",
    ]
    assert out.stderr == "telemetry-run: from a plugin 1\n"


def test_start_up_warnings_are_printed_as_before() -> None:
    out = _child(
        "from telemetry_run.bootstrap import run_once; run_once()",
        OTEL_TRACES_EXPORTER="none",
        OTEL_BSP_MAX_QUEUE_SIZE="lots",
        OTEL_TRACES_SAMPLER="sometimes",
    )
    assert out.stderr.splitlines() == [
        "telemetry-run: OTEL_BSP_MAX_QUEUE_SIZE='lots' is not an integer; using the default (2048)",
        "telemetry-run: OTEL_TRACES_SAMPLER='sometimes' is not a known sampler (available: "
        "always_off, always_on, parentbased_always_off, parentbased_always_on, "
        "parentbased_traceidratio, traceidratio); using the default (parentbased_always_on)",
    ]


def test_debug_lines_need_the_debug_level() -> None:
    code = "from telemetry_run.bootstrap import run_once; run_once()"
    assert _child(code, OTEL_TRACES_EXPORTER="none").stderr == ""
    debug = _child(code, OTEL_TRACES_EXPORTER="none", TELEMETRY_RUN_DEBUG="true").stderr
    assert "telemetry-run: instrumented process" in debug


def test_a_record_names_the_caller_as_the_real_logger_would(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = _log.Logger("telemetry_run.tests.caller")
    with caplog.at_level(logging.DEBUG, logger="telemetry_run.tests.caller"):
        logger.warning("w %s", "x")
        logger.debug("d")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("e")
    records = caplog.records
    assert [r.getMessage() for r in records] == ["w x", "d", "e"]
    assert {r.funcName for r in records} == {
        "test_a_record_names_the_caller_as_the_real_logger_would"
    }
    assert {r.filename for r in records} == {os.path.basename(__file__)}
    assert records[2].exc_info is not None
    assert logger.real is logging.getLogger("telemetry_run.tests.caller")
    assert logger.handlers is logger.real.handlers  # the rest of the Logger API
    assert logger.getChild("x") is logging.getLogger("telemetry_run.tests.caller.x")


# -- records: what @dataclass gave them -------------------------------------------------------

SPEC = InstrumentorSpec("lib", ("lib",), "lib>=1", "lib_inst:Inst", "a library")


def test_a_frozen_record_compares_hashes_and_refuses_assignment() -> None:
    same = InstrumentorSpec("lib", ("lib",), "lib>=1", "lib_inst:Inst", "a library")
    assert same == SPEC and hash(SPEC) == hash(same)
    assert SPEC.__replace__(description="another") != SPEC
    assert SPEC != ("lib", ("lib",), "lib>=1", "lib_inst:Inst", "a library")
    assert repr(SPEC) == (
        "InstrumentorSpec(name='lib', modules=('lib',), requires='lib>=1', load='lib_inst:Inst', "
        "description='a library', kind='', variables=(), matrix=())"
    )
    with pytest.raises(AttributeError):
        SPEC.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del SPEC.name  # type: ignore[misc]
    with pytest.raises(AttributeError):
        SPEC.extra = 1  # type: ignore[attr-defined]
    assert InstrumentorSpec.__match_args__[:5] == (
        "name",
        "modules",
        "requires",
        "load",
        "description",
    )


def test_records_copy_pickle_and_replace() -> None:
    limits = SpanLimits(max_events=3)
    for record in (SPEC, limits, ExportResult(False, 2, "no"), PluginFailure("p", "load", "E")):
        assert copy.copy(record) == record
        assert copy.deepcopy(record) == record
        assert pickle.loads(pickle.dumps(record)) == record
    assert limits.__replace__(max_links=1) == SpanLimits(max_events=3, max_links=1)
    with pytest.raises(TypeError, match="no field 'nope'"):
        limits.__replace__(nope=1)
    with pytest.raises(ValueError, match="max_events"):
        SpanLimits(max_events=-1)


def test_a_record_match_works_on_its_fields() -> None:
    match ExportResult(True, 0, None):
        case ExportResult(True, rejected, error):
            assert (rejected, error) == (0, None)
        case _:
            pytest.fail("no match")


def test_a_mutable_record_is_unhashable_and_skips_what_a_dataclass_skipped() -> None:
    status = InstrumentorStatus("lib", "builtin", ("lib",), "lib", "1.0", "lib>=1", "enabled")
    other = InstrumentorStatus(
        "lib", "builtin", ("lib",), "lib", "1.0", "lib>=1", "enabled", spec=SPEC
    )
    assert status == other  # spec is not compared
    assert "spec" not in repr(other) and repr(status) == repr(other)
    status.state = "patched"
    assert status != other
    with pytest.raises(TypeError):
        hash(status)
    config = Config({}, {})
    state = Bootstrapped(config, plugins=None)  # type: ignore[arg-type]
    assert state.instrumentors == [] and state.provider is None


def test_variable_and_config_defaults() -> None:
    variable = Variable("X", str, None, "doc")
    assert (variable.secret, variable.shown_default) == (False, None)
    assert variable == Variable("X", str, None, "doc", False, None)
    config = Config({"X": 1}, {"X": variable})
    assert (config.explicit, config.raw, config.warnings) == (frozenset(), {}, ())
    assert Config({}, {}).raw is not Config({}, {}).raw  # a fresh dict each, as default_factory
