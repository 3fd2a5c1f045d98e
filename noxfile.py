"""Test sessions: `nox` runs unit and integration tests on Python 3.11-3.13, the CI slice of
the framework matrix and the cross-framework trace, then the linters; `nox -t matrix` runs the
whole framework matrix (tests/matrix.py). `nox -l` marks the sessions `nox` runs today with `*`;
each matrix cell's description says whether CI runs it every time or on which rotation day.

The interpreters come from pyenv; its shims do not answer to `python3.12`, so each installed
version's bin directory is put on PATH here rather than in every developer's shell.
"""

from __future__ import annotations

import datetime
import glob
import os
import shutil
import subprocess
import sys

import nox

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tests import matrix  # the specs' release lines (telemetry_run installed, as in the README)

PYTHONS = list(matrix.PYTHONS)

# CI's slice (tests/matrix.py): every framework's floor on the oldest Python it supports
# and its latest release on the newest, plus the day's share of the other cells
# (the UTC date's day number, or MATRIX_DAY to rerun another day's), so the whole matrix runs
# within any 7 consecutive days; `nox -t matrix` runs it all.
TODAY = int(os.environ.get("MATRIX_DAY") or datetime.datetime.now(datetime.UTC).toordinal())
CI_SLICE = matrix.ci_cells(TODAY)

nox.options.sessions = ["unit", "integration", *CI_SLICE, "e2e", "lint"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True


def _pyenv_bins() -> list[str]:
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        root = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=False
        ).stdout.strip()
    root = root or os.path.expanduser("~/.pyenv")
    return sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin")), reverse=True)


os.environ["PATH"] = os.pathsep.join([*_pyenv_bins(), os.environ.get("PATH", "")])


def _pytest(session: nox.Session, *paths: str, env: dict[str, str] | None = None) -> None:
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        *(session.posargs or paths),
        env=env,
    )


# Each instrumentor's own unit tests run in its matrix sessions (floor and latest in every CI
# run), against the library versions it supports, with the servers they need.
UNIT_TESTS = [
    "tests/unit",
    *(f"--ignore=tests/unit/instrumentors/test_{name}.py" for name in matrix.MATRIX),
]
# The framework tests run in their own sessions, against each version of the matrix.
INTEGRATION_TESTS = [
    "tests/integration",
    "tests/reliability",
    *(f"--ignore=tests/integration/{name}" for name in [*matrix.MATRIX, "e2e"]),
]


def _install_unit(session: nox.Session) -> None:
    # pip: the packaging test builds the wheel, and uv's venvs come without it.
    session.install(".[test]", "pip")


def _install_integration(session: nox.Session) -> None:
    session.install(".[test]")
    try:
        session.install(".[servers]")  # uWSGI compiles from source (about 40 s of CPU)
    except nox.command.CommandFailed:
        # The README promises uWSGI support: in CI its tests must run, so no uWSGI is a failure.
        if os.environ.get("CI", "").lower() in ("true", "1"):
            session.error("uWSGI could not be built (see the pip output above): CI needs it")
        session.warn("uWSGI could not be built here: its server tests will be skipped")


@nox.session(python=PYTHONS)
def unit(session: nox.Session) -> None:
    """Unit tests of sdk/, distro/ and instrumentors/ on one Python version."""
    _install_unit(session)
    _pytest(session, *UNIT_TESTS)


@nox.session(python=PYTHONS)
def integration(session: nox.Session) -> None:
    """Real processes under the launcher: exit codes, signals, sitecustomize, the exit bound,
    the servers (gunicorn, uWSGI, uvicorn, Flask's and Django's reloaders), and the
    reliability tests (bad configuration, faults, shutdown under load)."""
    _install_integration(session)
    _pytest(session, *INTEGRATION_TESTS)


STRESS_ROUNDS = 3


@nox.session(python="3.12")
def stress(session: nox.Session) -> None:
    """The unit and integration tests three times in a row while `stress-ng --cpu 2` loads
    the machine (issue 14: no test may flake under load). Not run by `nox`: it keeps two cores
    busy for half an hour or more. Needs stress-ng (Debian: `apt-get install stress-ng`)."""
    binary = shutil.which("stress-ng")
    if binary is None:
        session.error(
            "stress-ng is not installed: `apt-get install stress-ng` (Debian's package), "
            "then run `nox -s stress` again"
        )
    _install_unit(session)
    _install_integration(session)
    # Arguments after `--` replace both paths: one file's flake reproduced under load.
    runs = (
        [("the given", session.posargs)]
        if session.posargs
        else [
            ("unit", UNIT_TESTS),
            ("integration", INTEGRATION_TESTS),
        ]
    )
    # The backstop outlives any run: if nox itself is killed, stress-ng still stops one day.
    load = subprocess.Popen(
        [binary, "--cpu", "2", "--timeout", "6h"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    session.log(f"stress-ng --cpu 2 started, pid {load.pid}")
    try:
        for round_ in range(1, STRESS_ROUNDS + 1):
            for name, paths in runs:
                session.log(f"round {round_}/{STRESS_ROUNDS}: {name} tests under load")
                session.run("pytest", "-p", "no:cacheprovider", *paths)
                if load.poll() is not None:  # a pass without load would prove nothing
                    session.error(f"stress-ng ended early (status {load.returncode})")
        session.log(f"{STRESS_ROUNDS} rounds in a row passed under stress-ng --cpu 2")
    finally:
        load.terminate()  # stress-ng stops its workers on SIGTERM
        try:
            load.wait(30)
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait()


# Test tools a framework session needs besides the framework (no peers, no other frameworks).
_FRAMEWORK_TEST_TOOLS = ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100"]


def _framework_session(framework: str, version: str, python: str) -> None:
    def session_function(session: nox.Session) -> None:
        session.install(
            ".",
            *_FRAMEWORK_TEST_TOOLS,
            matrix.requirement(framework, version),
            *matrix.companions(framework, version),
            *matrix.servers(framework),
        )
        _pytest(
            session,
            *matrix.PYTEST_OPTIONS.get((framework, version), ()),
            *matrix.tests(framework),
            # Shared test files (the HTTP clients' alike cases) run this framework's part.
            env={"TELEMETRY_RUN_MATRIX_FRAMEWORK": framework},
        )

    name = matrix.session_name(framework, version, python)
    if name in matrix.always_in_ci():
        in_ci = "CI: every run"
    else:
        slot = matrix.rotation_slot(name)
        in_ci = f"CI: when the UTC date's day number % {matrix.ROTATION_DAYS} is {slot}"
    session_function.__doc__ = (
        f"{framework} {version}: the instrumentor's unit and real-server tests. {in_ci}."
    )
    nox.session(name=name, python=python, tags=["matrix", framework])(session_function)


for _framework, (_, _versions) in matrix.MATRIX.items():
    for _version in _versions:
        for _python in matrix.pythons(_framework, _version):
            _framework_session(_framework, _version, _python)


@nox.session(python=PYTHONS[-1], tags=["matrix"])
def e2e(session: nox.Session) -> None:
    """One trace across flask -> requests -> django -> grpc, and one across fastapi/uvicorn ->
    httpx -> flask/gunicorn -> psycopg + redis -> a celery worker -> sqlalchemy, each part a real
    process (PostgreSQL and redis-server from Debian's packages)."""
    session.install(
        ".",
        *_FRAMEWORK_TEST_TOOLS,
        *(matrix.requirement(framework, "latest") for framework in matrix.MATRIX),
        "gunicorn>=22",
        "fastapi",  # the cross-library scenario's front service (the asgi line installs uvicorn)
        "psycopg[binary]>=3.1",  # psycopg's libpq, as in the psycopg and sqlalchemy sessions
    )
    _pytest(session, "tests/integration/e2e")


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff (lint and format), mypy --strict on the installed package, and the tests that read
    the peers' source (tests/peers: what the docs say of a peer is what its code does)."""
    session.install(".[test]", "ruff", "mypy", "nox", "ddtrace>=2.0")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "-p", "telemetry_run")
    _pytest(session, "tests/peers")
