"""The example plugin (examples/telemetry-run-example) installed the way a user installs one.

A fresh virtual environment gets telemetry-run built from this checkout and the example plugin
(both non-editable, so what is tested is what the wheels hold); then the example's own test suite
runs there, and an application runs under that environment's ``telemetry-run`` with the plugin's
``route`` sampler and ``tinyqueue`` instrumentor, its spans read from the console exporter.

Installing needs the package index (pluggy, wrapt, grpcio, ... and pytest, unless cached): when
it fails and the index cannot be reached, the tests are skipped, saying so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from telemetry_run.testing.contract import CHECKS
from tests.integration.conftest import clean_env

pytestmark = pytest.mark.timeout(900)  # the module's first test pays for the installation

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "telemetry-run-example"
VENV_TIMEOUT = 120.0
INSTALL_TIMEOUT = 600.0
RUN_TIMEOUT = 120.0
TESTS_TIMEOUT = 300.0


@dataclass(frozen=True)
class Environment:
    """A virtual environment with telemetry-run and the example plugin installed."""

    venv: Path
    example: Path  # the copy of the example it was installed from (its tests run there)

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def _uv() -> str | None:
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.exists() else shutil.which("uv")


def _index_unreachable() -> str | None:
    """Why the package index cannot be reached, or None when a TCP connection to it opens."""
    host, port = "pypi.org", 443
    for variable in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        url = urlsplit(os.environ.get(variable, ""))
        if url.hostname:
            host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
            break
    try:
        with socket.create_connection((host, port), timeout=5):
            return None
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc})"


def _setup_step(
    what: str, args: Sequence[str | Path], cwd: Path, timeout: float = VENV_TIMEOUT
) -> None:
    """Run one installation step; skip when it fails for want of network, else fail."""
    env = clean_env()
    env.pop("VIRTUAL_ENV", None)
    try:
        proc = subprocess.run(
            [str(arg) for arg in args],
            cwd=cwd,  # not this checkout: uv would read its pyproject.toml for settings
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        output = f"(no result after {timeout:.0f} s)"
    else:
        if proc.returncode == 0:
            return
        output = (proc.stdout + proc.stderr).strip()
    unreachable = _index_unreachable()
    if unreachable is not None:
        pytest.skip(f"no network: {what} failed and the package index {unreachable}")
    pytest.fail(f"{what} failed:\n{output}", pytrace=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    root = tmp_path_factory.mktemp("example-plugin")
    # A copy: building in place would leave build/ and *.egg-info in the example's folder.
    example = root / "telemetry-run-example"
    shutil.copytree(
        EXAMPLE,
        example,
        ignore=shutil.ignore_patterns(
            "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv"
        ),
    )
    env = Environment(root / "venv", example)
    python = env.bin("python")
    uv = _uv()
    if uv is not None:
        _setup_step(
            "creating a venv", [uv, "venv", "-q", "--python", sys.executable, env.venv], root
        )
        # Never a wheel uv cached from an earlier state of these two folders.
        refresh = [
            "--refresh-package",
            "telemetry-run",
            "--refresh-package",
            "telemetry-run-example",
        ]
        install = [uv, "pip", "install", "-q", "--python", python, *refresh]
    else:
        _setup_step("creating a venv", [sys.executable, "-m", "venv", env.venv], root)
        install = [python, "-m", "pip", "install", "-q"]
    _setup_step("installing", [*install, ROOT, f"{example}[test]"], root, INSTALL_TIMEOUT)
    return env


def _run(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` with the test's environment minus OTEL_*/TELEMETRY_RUN_*, plus ``env``."""
    environ = clean_env(**(env or {}))
    environ.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        args, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_examples_own_tests_pass_in_that_environment(installed: Environment) -> None:
    result = _run(
        [installed.bin("python"), "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"],
        cwd=installed.example,
        timeout=TESTS_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"=* ?\d+ passed in [\d.]+s ?=*", summary), summary  # none skipped
    for check in CHECKS:  # the shared contract suite ran on the tinyqueue instrumentor
        assert f"PASSED tests/test_tinyqueue_contract.py::test_contract_{check}\n" in result.stdout


APP = textwrap.dedent(
    """
    import json

    import tinyqueue
    from telemetry_run import bootstrap, trace

    tracer = trace.get_tracer("example-app")
    SERVER = {"url.scheme": "http", "server.address": "shop.example"}


    def request(method, path):
        # What a server instrumentor does: the route in the start attributes, for the sampler.
        attributes = {**SERVER, "http.request.method": method, "url.path": path}
        return tracer.start_as_current_span(
            f"{method} {path}", kind=trace.SpanKind.SERVER, attributes=attributes
        )


    with request("GET", "/health/live"):
        tracer.start_span("handler /health/live").end()

    queue = tinyqueue.Queue("orders")
    with request("POST", "/orders"):
        queue.put({"order": 42})
    message = queue.get()

    states = {s.name: s.state for s in bootstrap.current().instrumentors if s.name == "tinyqueue"}
    print("STATES", json.dumps(states), flush=True)
    print("received", message.body, flush=True)
    """
)

SPAN_LINE = re.compile(
    r"'(?P<name>[^']*)' (?P<kind>[A-Z]+) \S+ (?P<status>\S+) "
    r"trace=(?P<trace>[0-9a-f]{32}) span=(?P<span>[0-9a-f]{16}) parent=(?P<parent>\S{16})"
    r"(?: (?P<rest>.*))?"
)


@dataclass(frozen=True)
class ExportedSpan:
    name: str
    kind: str
    trace: str
    span: str
    parent: str | None
    attributes: dict[str, Any]


def _exported(stdout: str) -> dict[str, ExportedSpan]:
    """The console exporter's lines (one span each), by span name."""
    spans = {}
    for line in stdout.splitlines():
        match = SPAN_LINE.fullmatch(line)
        if match is None:
            continue
        rest = match["rest"] or ""
        attributes = json.JSONDecoder().raw_decode(rest)[0] if rest.startswith("{") else {}
        parent = match["parent"]
        span = ExportedSpan(
            match["name"],
            match["kind"],
            match["trace"],
            match["span"],
            None if parent == "-" * 16 else parent,
            attributes,
        )
        assert span.name not in spans, f"{span.name!r} exported twice:\n{stdout}"
        spans[span.name] = span
    return spans


def _run_app(
    installed: Environment, tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    return _run(
        [installed.bin("telemetry-run"), installed.bin("python"), str(app)],
        cwd=tmp_path,
        env={
            "OTEL_TRACES_EXPORTER": "console",
            "TELEMETRY_RUN_CONSOLE_FORMAT": "spans",  # one line per span, parsed below
            "OTEL_TRACES_SAMPLER": "route",
            "OTEL_SERVICE_NAME": "example-app",
            **env,
        },
    )


def test_an_app_under_telemetry_run_gets_the_route_sampler_and_tinyqueue_spans(
    installed: Environment, tmp_path: Path
) -> None:
    result = _run_app(installed, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning, and every span delivered (no exit line)
    assert "received {'order': 42}" in result.stdout
    assert 'STATES {"tinyqueue": "patched"}' in result.stdout  # patched when the app imported it

    spans = _exported(result.stdout)
    # The health check and its child are dropped by the route sampler; the rest is sampled.
    assert set(spans) == {"POST /orders", "tinyqueue put", "tinyqueue get"}, result.stdout
    orders, put, get = spans["POST /orders"], spans["tinyqueue put"], spans["tinyqueue get"]
    assert orders.attributes["url.path"] == "/orders"
    assert (orders.kind, put.kind, get.kind) == ("SERVER", "PRODUCER", "CONSUMER")
    assert put.attributes["messaging.destination.name"] == "orders"
    assert put.parent == orders.span
    # The consumer continues the producer's trace, through the message headers.
    assert get.trace == put.trace == orders.trace
    assert get.parent == put.span


def test_the_drop_prefixes_come_from_the_plugins_variable(
    installed: Environment, tmp_path: Path
) -> None:
    result = _run_app(
        installed,
        tmp_path,
        TELEMETRY_RUN_EXAMPLE_DROP_PREFIXES="/orders",
        OTEL_TRACES_SAMPLER_ARG="plenty",
    )
    assert result.returncode == 0, result.stderr
    spans = _exported(result.stdout)
    # Now the orders trace is dropped, consumer included (the message says "not sampled").
    assert set(spans) == {"GET /health/live", "handler /health/live"}, result.stdout
    assert result.stderr.splitlines() == [
        "telemetry-run: OTEL_TRACES_SAMPLER_ARG='plenty' is not a ratio in [0, 1]; "
        "the route sampler uses the default (1.0)"
    ]


def test_list_shows_what_the_example_plugin_provides(
    installed: Environment, tmp_path: Path
) -> None:
    result = _run(
        [installed.bin("telemetry-run"), "--list"],
        cwd=tmp_path,
        env={"OTEL_TRACES_SAMPLER": "route"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(
        r"^  tinyqueue +example +telemetry-run-example +0\.1\.0 +telemetry-run-example>=0\.1 "
        r"+enabled$",
        out,
        re.M,
    ), out
    (samplers,) = [line for line in out.splitlines() if line.startswith("  samplers: ")]
    assert "route: example" in samplers.split(", ")
    assert "Plugins that failed to load:\n  (none)" in out
    assert re.search(r"^    TELEMETRY_RUN_EXAMPLE_DROP_PREFIXES +/health$", out, re.M), out
    assert "* OTEL_TRACES_SAMPLER" in out
    assert "'route'" not in out  # no "names 'route', which no installed plugin provides"
