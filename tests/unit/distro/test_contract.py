"""The instrumentor contract suite, run on a fake instrumentor that keeps it and ones that don't."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from telemetry_run.instrumentors.base import InstrumentorSpec
from telemetry_run.testing.contract import CHECKS, contract_tests, run_check

FIXTURES = Path(__file__).with_name("fixtures")
SYS_PATH = [str(FIXTURES), *sys.path]
EXERCISE = "contract_exercise:use_client"
SPEC = InstrumentorSpec(
    name="contract-client",
    modules=("contract_target",),
    requires="contract-target>=1.0,<2",
    load="contract_instrumentors:ClientInstrumentor",
    description="the stand-in library's client",
)

# One test_contract_<check> per check, exactly as a plugin's test module would do it.
contract_tests(globals(), spec=SPEC, exercise=EXERCISE, sys_path=SYS_PATH)


def replace(spec: InstrumentorSpec, **changes: str) -> InstrumentorSpec:
    """``dataclasses.replace`` for the spec (``copy.replace`` from Python 3.13)."""
    replaced: InstrumentorSpec = spec.__replace__(**changes)
    return replaced


def test_every_check_was_added() -> None:
    assert {f"test_contract_{check}" for check in CHECKS} <= set(globals())


def test_a_standard_library_target_gets_no_version_check() -> None:
    added: dict[str, object] = {}
    contract_tests(added, spec=replace(SPEC, requires=""), exercise=EXERCISE, sys_path=SYS_PATH)
    assert set(added) == {f"test_contract_{c}" for c in CHECKS if c != "version_outside_requires"}


def test_a_patch_made_by_assignment_is_caught() -> None:
    spec = replace(SPEC, load="contract_instrumentors:AssigningInstrumentor")
    with pytest.raises(
        pytest.fail.Exception, match=r"left these changed.*contract_target\.Client\.call"
    ):
        run_check("uninstrument_restores", spec=spec, exercise=EXERCISE, sys_path=SYS_PATH)


def test_wrapping_twice_is_caught() -> None:
    spec = replace(SPEC, load="contract_instrumentors:DoubleWrapper")
    with pytest.raises(pytest.fail.Exception, match="wrapped twice"):
        run_check("double_instrument", spec=spec, exercise=EXERCISE, sys_path=SYS_PATH)


def test_a_broken_instrumentor_fails_loudly_in_the_suite() -> None:
    spec = replace(SPEC, load="contract_instrumentors:BrokenInstrumentor")
    with pytest.raises(pytest.fail.Exception, match="instrumentor bug"):
        run_check("patch_before_import", spec=spec, exercise=EXERCISE, sys_path=SYS_PATH)


def test_the_version_check_is_skipped_for_a_standard_library_target() -> None:
    spec = replace(SPEC, requires="")
    with pytest.raises(pytest.skip.Exception, match="standard-library"):
        run_check("version_outside_requires", spec=spec, exercise=EXERCISE, sys_path=SYS_PATH)


def test_an_unknown_check_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown contract check"):
        run_check("nonsense", spec=SPEC, exercise=EXERCISE)


def test_the_span_recorder_fixture_is_opt_in(tmp_path: Path) -> None:
    """``pytest_plugins = ["telemetry_run.testing"]`` brings the fixture; nothing else does."""
    import importlib.metadata
    import subprocess

    assert not [
        ep
        for ep in importlib.metadata.entry_points(group="pytest11")
        if ep.value.startswith("telemetry_run")
    ]
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["telemetry_run.testing"]\n')
    (tmp_path / "test_uses_recorder.py").write_text(
        "def test_recorder(span_recorder):\n"
        "    with span_recorder.tracer.start_as_current_span('outer'):\n"
        "        with span_recorder.tracer.start_as_current_span('inner'):\n"
        "            pass\n"
        "    assert [s.name for s in span_recorder.spans] == ['inner', 'outer']\n"
        "    assert span_recorder.one('outer').parent is None\n"
        "    assert span_recorder.by_name('inner')[0].parent is not None\n"
        "    span_recorder.clear()\n"
        "    assert span_recorder.spans == ()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
