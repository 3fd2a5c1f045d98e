"""Garbage in every variable we read: the app still starts, each bad variable gets one warning
that names it, and the defaults are used."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from telemetry_run._env import InvalidValue
from telemetry_run.config import BUILTIN_VARIABLES, Variable
from telemetry_run.plugins import Plugins
from tests.integration.conftest import LAUNCHER, clean_env

APP = "import sys; print('app ran', sys.argv[1:])"

GARBAGE = [
    "   ",
    "-1",
    "0",
    "99999999999999999999999",
    "true_ish",
    "1.5e400",
    "\x01\x02\x1b[31m",
    " a , ,b,, ",
    "=",
    "%zz=%",
    "http://[::1",
    "5000ms",
    "x" * 5000,
]


def _registry() -> list[Variable]:
    variables = {variable.name: variable for variable in BUILTIN_VARIABLES}
    for variable in Plugins.load().variables():
        variables.setdefault(variable.name, variable)
    return list(variables.values())


def _rejects(variable: Variable, raw: str) -> bool:
    text = raw.strip()
    if not text:
        return False  # empty equals unset
    if any(ord(c) < 0x20 and c != "\t" for c in text):
        return True  # control characters: invalid whatever the variable
    try:
        variable.parse(text)
    except InvalidValue:
        return True
    return False


def _run(env: dict[str, str] | dict[bytes, bytes]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*LAUNCHER, sys.executable, "-c", APP, "arg"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("garbage", GARBAGE, ids=lambda g: repr(g)[:20])
def test_every_variable_set_to_garbage(garbage: str) -> None:
    variables = _registry()
    env = clean_env()
    for variable in variables:
        env[variable.name] = garbage
    env["OTEL_SDK_DISABLED"] = "false"  # keep the SDK on, so every variable is used
    env["TELEMETRY_RUN_STRICT"] = "false"  # and our containment in place
    result = _run(env)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout.decode() == "app ran ['arg']\n"
    lines = result.stderr.decode(errors="replace").splitlines()
    for variable in variables:
        naming = [line for line in lines if f"{variable.name}=" in line]
        if variable.name in ("OTEL_SDK_DISABLED", "TELEMETRY_RUN_STRICT"):
            continue
        if _rejects(variable, garbage):
            assert len(naming) == 1, (variable.name, naming)
        assert len(naming) <= 1, (variable.name, naming)  # never the same warning twice
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    assert all(line.isprintable() for line in lines), "a value reached stderr unescaped"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX environments hold bytes")
def test_non_utf8_bytes_in_every_variable() -> None:
    env = {key.encode(): value.encode() for key, value in clean_env().items()}
    for variable in _registry():
        env[variable.name.encode()] = b"\xff\xfe\x80 bad"
    env[b"OTEL_SDK_DISABLED"] = b"false"
    env[b"TELEMETRY_RUN_STRICT"] = b"false"
    result = _run(env)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == b"app ran ['arg']\n"
    assert b"Traceback" not in result.stderr
    assert b"OTEL_BSP_MAX_QUEUE_SIZE=" in result.stderr  # named, with the value escaped


def test_strict_mode_still_only_warns_about_configuration() -> None:
    """Bad configuration is the user's, not our bug: strict mode must not turn it into a crash."""
    env = clean_env(OTEL_BSP_MAX_QUEUE_SIZE="-5", TELEMETRY_RUN_STRICT="true")
    result = _run(env)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"OTEL_BSP_MAX_QUEUE_SIZE='-5'" in result.stderr
    assert os.linesep.encode() in result.stderr
