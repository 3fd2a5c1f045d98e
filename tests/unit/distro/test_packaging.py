"""The built wheel holds every module of the mapped folders, and the README stays true."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.server_process import in_ci

ROOT = Path(__file__).resolve().parents[3]
FOLDERS = {
    "distro": "telemetry_run",
    "sdk": "telemetry_run/sdk",
    "instrumentors": "telemetry_run/instrumentors",
    "sitecustomize": "telemetry_run/sitecustomize",
}


def _expected_files() -> set[str]:
    expected = set()
    for folder, target in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder)
            if "__pycache__" not in rel.parts:
                expected.add(f"{target}/{rel.as_posix()}")
    return expected


@pytest.mark.timeout(300)
def test_wheel_contains_every_module(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=280,
    )
    (wheel,) = tmp_path.glob("telemetry_run-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _expected_files() - names
    assert not missing, f"modules left out of the wheel (add the package to pyproject): {missing}"
    assert "telemetry_run/py.typed" in names
    static = {
        f"telemetry_run/viewer/static/{p.name}" for p in (ROOT / "distro/viewer/static").iterdir()
    }
    assert static - names == set(), "the --view page's files must ship in the wheel"
    assert not any(n.startswith(("sdk/", "distro/", "tests/")) for n in names)
    # The native twins are optional for an install without a C compiler, never for our wheel.
    native = [n for n in names if n.startswith("telemetry_run/sdk/_speedups.") and n[-3:] == ".so"]
    if in_ci() or shutil.which("cc"):
        assert native, "the wheel lacks the native module built from sdk/_speedups.c"
    assert "telemetry_run/sdk/_speedups.pyi" in names
    assert "telemetry_run/sdk/_speedups.c" not in names  # the sdist's, not the wheel's


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_has_exactly_two_setup_commands() -> None:
    demo, tests = _readme_commands()
    assert "telemetry-run" in demo and "examples/flask_demo.py" in demo
    assert "nox" in tests


def test_ci_runs_the_readmes_test_command_verbatim() -> None:
    _, tests = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()
    # and every test file .ci/run names (as the one keeping it in step) exists
    named = re.findall(r"tests/[\w/]+\.py", ci)
    assert named, "the comment of .ci/run names the test that keeps it in step"
    assert [path for path in named if not (ROOT / path).is_file()] == []
