"""Test sessions: `nox` runs unit and integration tests on Python 3.11-3.13, then the linters.

The interpreters come from pyenv; its shims do not answer to `python3.12`, so each installed
version's bin directory is put on PATH here rather than in every developer's shell.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import nox

PYTHONS = ["3.11", "3.12", "3.13"]

nox.options.sessions = ["unit", "integration", "lint"]
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


def _pytest(session: nox.Session, *paths: str) -> None:
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        *(session.posargs or paths),
    )


@nox.session(python=PYTHONS)
def unit(session: nox.Session) -> None:
    """Unit tests of sdk/, distro/ and instrumentors/ on one Python version."""
    # pip: the packaging test builds the wheel, and uv's venvs come without it.
    session.install(".[test]", "pip")
    _pytest(session, "tests/unit")


@nox.session(python=PYTHONS)
def integration(session: nox.Session) -> None:
    """Real processes under the launcher: exit codes, signals, sitecustomize, the exit bound,
    and the servers (gunicorn, uWSGI, uvicorn, Flask's and Django's reloaders)."""
    session.install(".[test]")
    try:
        session.install(".[servers]")  # uWSGI compiles from source (about 40 s of CPU)
    except nox.command.CommandFailed:
        session.warn("uWSGI could not be built here: its server tests will be skipped")
    _pytest(session, "tests/integration")


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy --strict on the installed package."""
    session.install(".[test]", "ruff", "mypy", "nox")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "-p", "telemetry_run")
