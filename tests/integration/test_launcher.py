"""The launcher as users run it: real processes, exit codes, signals, environment, exit bound."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from telemetry_run import __version__
from tests.integration.conftest import (
    HANGING_EXPORTER,
    LAUNCHER,
    PYTHON,
    FakeDistribution,
    clean_env,
    launch,
)

EXIT_LINE = re.compile(
    r"telemetry-run: spans produced=(\d+) exported=(\d+) dropped=(\d+) "
    r"\(queue_full=(\d+), export_failed=(\d+), rejected=(\d+), shutdown=(\d+)\)"
)


def test_version_and_help() -> None:
    result = launch(["--version"])
    assert result.returncode == 0
    assert result.stdout.strip() == f"telemetry-run {__version__}"
    result = launch(["--help"])
    assert result.returncode == 0
    assert "usage: telemetry-run" in result.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("telemetry-run")
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_missing_command_and_unknown_option_exit_2_with_one_line() -> None:
    for args in ([], ["--bogus", "python"]):
        result = launch(args)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("telemetry-run: ")


def test_command_not_found_exits_127() -> None:
    result = launch(["definitely-not-a-command-xyz"])
    assert result.returncode == 127
    assert "definitely-not-a-command-xyz: command not found" in result.stderr


@pytest.mark.parametrize("code", [0, 3])
def test_the_apps_exit_code_is_kept(code: int) -> None:
    result = launch([PYTHON, "-c", f"import sys; sys.exit({code})"])
    assert result.returncode == code
    assert result.stderr == ""


def test_same_pid_and_stdin_stdout_pass_through() -> None:
    code = "import os, sys; print(os.getpid()); print(sys.stdin.read().upper())"
    with subprocess.Popen(
        [*LAUNCHER, PYTHON, "-c", code],
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        out, _ = proc.communicate("hello", timeout=60)
    pid, echoed = out.split()
    assert int(pid) == proc.pid  # exec: no process in between
    assert echoed == "HELLO"


def test_death_by_sigterm_is_kept() -> None:
    with subprocess.Popen(
        [*LAUNCHER, PYTHON, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        env=clean_env(OTEL_TRACES_EXPORTER="console"),
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM


def test_spans_made_before_sigterm_are_flushed(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        "import time\n"
        "from telemetry_run import trace\n"
        "trace.get_tracer('app').start_span('before-term').end()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [*LAUNCHER, PYTHON, str(app)],
        env=clean_env(OTEL_TRACES_EXPORTER="console", TELEMETRY_RUN_CONSOLE_FORMAT="spans"),
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert "'before-term'" in out
    assert proc.returncode == -signal.SIGTERM


def test_pythonpath_is_kept_after_ours(tmp_path: Path) -> None:
    (tmp_path / "mylib.py").write_text("VALUE = 42\n")
    env = clean_env(PYTHONPATH=str(tmp_path))
    result = launch(
        [PYTHON, "-c", "import sys, mylib; print(mylib.VALUE); print(sys.path[1])"], env
    )
    assert result.returncode == 0, result.stderr
    value, first_entry = result.stdout.split()
    assert value == "42"
    assert first_entry.endswith("sitecustomize")


def test_the_users_sitecustomize_still_runs(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.USER_SITE_RAN = True\n")
    result = launch(
        [PYTHON, "-c", "import builtins; print(getattr(builtins, 'USER_SITE_RAN', False))"],
        clean_env(PYTHONPATH=str(tmp_path)),
    )
    assert result.stdout.strip() == "True", result.stderr


def test_spans_are_exported_with_the_console_exporter() -> None:
    code = (
        "from telemetry_run import trace\n"
        "tracer = trace.get_tracer('app')\n"
        "with tracer.start_as_current_span('outer'):\n"
        "    tracer.start_span('inner').end()\n"
    )
    result = launch(
        [PYTHON, "-c", code],
        clean_env(
            OTEL_TRACES_EXPORTER="console",
            OTEL_SERVICE_NAME="svc",
            TELEMETRY_RUN_CONSOLE_FORMAT="spans",
        ),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["'inner'", "'outer'"]
    assert result.stderr == ""  # everything delivered: no exit line


FULL_EXIT_LINE = re.compile(
    EXIT_LINE.pattern + r" retried=(\d+) "
    r"over_limits=\(attributes=(\d+), events=(\d+), links=(\d+)\) invalid_attributes=(\d+)$",
    re.MULTILINE,
)


def test_debug_prints_the_exit_line_even_when_everything_was_delivered() -> None:
    code = "from telemetry_run import trace\ntrace.get_tracer('app').start_span('s').end()\n"
    result = launch(
        [PYTHON, "-c", code],
        clean_env(OTEL_TRACES_EXPORTER="console", TELEMETRY_RUN_DEBUG="true"),
    )
    assert result.returncode == 0, result.stderr
    match = FULL_EXIT_LINE.search(result.stderr)
    assert match is not None, result.stderr
    assert tuple(map(int, match.groups())) == (1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def test_what_the_span_limits_cut_is_on_the_exit_line() -> None:
    code = (
        "from telemetry_run import trace\n"
        "span = trace.get_tracer('app').start_span('s')\n"
        "for i in range(5):\n"
        "    span.set_attribute(f'a{i}', i)\n"
        "    span.add_event(f'e{i}')\n"
        "span.set_attribute('bad', object())\n"
        "span.end()\n"
    )
    result = launch(
        [PYTHON, "-c", code],
        clean_env(
            OTEL_TRACES_EXPORTER="console",
            TELEMETRY_RUN_CONSOLE_FORMAT="spans",
            OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT="2",
            OTEL_SPAN_EVENT_COUNT_LIMIT="3",
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("'s'")  # the span itself was delivered
    match = FULL_EXIT_LINE.search(result.stderr)
    assert match is not None, result.stderr
    counts = tuple(map(int, match.groups()))
    assert counts[:3] == (1, 1, 0)  # produced, exported, dropped
    assert counts[8:] == (3, 2, 0, 1)  # attributes and events over the limits; one invalid value


def test_sdk_disabled_means_no_spans_and_no_output() -> None:
    code = (
        "from telemetry_run import trace\n"
        "print(trace.get_tracer('a').start_span('x').is_recording())\n"
    )
    result = launch(
        [PYTHON, "-c", code],
        clean_env(OTEL_TRACES_EXPORTER="console", OTEL_SDK_DISABLED="true"),
    )
    assert result.stdout.strip() == "False"
    assert result.stderr == ""


def test_a_bad_variable_warns_once_and_the_app_runs() -> None:
    result = launch(
        [PYTHON, "-c", "print('app ran')"],
        clean_env(OTEL_BSP_MAX_QUEUE_SIZE="lots"),
    )
    assert result.returncode == 0
    assert result.stdout.strip() == "app ran"
    warnings = [ln for ln in result.stderr.splitlines() if "OTEL_BSP_MAX_QUEUE_SIZE" in ln]
    assert len(warnings) == 1
    assert "'lots'" in warnings[0]


def test_a_bootstrap_failure_does_not_stop_the_app(tmp_path: Path) -> None:
    # A broken install of something our bootstrap needs (here: a contextvars that fails to
    # import) breaks our bootstrap only.
    (tmp_path / "contextvars.py").write_text("raise RuntimeError('broken install')\n")
    result = launch(
        [PYTHON, "-c", "print('app ran')"],
        clean_env(PYTHONPATH=str(tmp_path), OTEL_TRACES_EXPORTER="console"),
    )
    assert result.returncode == 0
    assert result.stdout.strip() == "app ran"
    assert result.stderr.count("telemetry-run:") == 1
    assert "bootstrap failed" in result.stderr


def test_strict_mode_makes_bootstrap_failures_loud(tmp_path: Path) -> None:
    (tmp_path / "contextvars.py").write_text("raise RuntimeError('broken install')\n")
    result = launch(
        [PYTHON, "-c", "print('app ran')"],
        clean_env(PYTHONPATH=str(tmp_path), TELEMETRY_RUN_STRICT="true"),
    )
    assert "broken install" in result.stderr
    assert "Error in sitecustomize" in result.stderr  # Python reports it, as for any sitecustomize


QUIET_PLUGIN = """
from telemetry_run.plugin import hookimpl

@hookimpl
def telemetry_run_provides():
    return None
"""


def test_a_broken_pluggy_turns_instrumentation_off_and_the_app_still_runs(
    plugins_dir: FakeDistribution,
) -> None:
    # Every plugin, built-ins included, registers with pluggy: without it nothing is traced,
    # one line says why, and the application runs as it would without us.
    plugins_dir.add("quiet_plugin", QUIET_PLUGIN)
    (plugins_dir.root / "pluggy.py").write_text("raise RuntimeError('broken install')\n")
    code = "from telemetry_run import trace\ntrace.get_tracer('app').start_span('s').end()\n"
    code += "print('app ran')\n"
    result = launch(
        [PYTHON, "-c", code],
        clean_env(
            PYTHONPATH=str(plugins_dir.root),
            OTEL_TRACES_EXPORTER="console",
            TELEMETRY_RUN_CONSOLE_FORMAT="spans",
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "app ran\n"
    assert result.stderr == (
        "telemetry-run: instrumentation is off for this process: bootstrap failed "
        "(RuntimeError: broken install)\n"
    )


def test_libraries_are_never_imported_by_us() -> None:
    code = (
        "import sys\n"
        "print(sorted(m for m in ('grpc', 'google.protobuf', 'flask', 'django', 'requests')"
        " if m in sys.modules))\n"
    )
    result = launch([PYTHON, "-c", code], clean_env(OTEL_TRACES_EXPORTER="console"))
    assert result.stdout.strip() == "[]", result.stderr


def test_an_exporter_that_hangs_cannot_hold_the_exit(plugins_dir: FakeDistribution) -> None:
    plugins_dir.add("hang_plugin", HANGING_EXPORTER)
    code = (
        "import time\n"
        "from telemetry_run import trace\n"
        "tracer = trace.get_tracer('app')\n"
        "for _ in range(1000):\n"
        "    tracer.start_span('s').end()\n"
        "print(time.time(), flush=True)\n"
    )
    env = clean_env(
        PYTHONPATH=str(plugins_dir.root),
        OTEL_TRACES_EXPORTER="hang",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_BSP_EXPORT_TIMEOUT="0",  # no limit: only the exit bound below can end the wait
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="1000",
    )
    # The export never returns: the process ends only through the 1 s bound (the timeout
    # raises on a hang; bench/exit_collector_down.py measures how long the exit takes).
    result = launch([PYTHON, "-c", code], env, timeout=60)
    assert result.returncode == 0, result.stderr
    match = EXIT_LINE.search(result.stderr)
    assert match is not None, result.stderr
    produced, exported, dropped, queue_full, failed, rejected, shutdown = map(int, match.groups())
    assert produced == 1000
    assert exported == 0
    assert dropped == queue_full + failed + rejected + shutdown == 1000


def test_python_dash_m_and_child_processes_are_instrumented_once_each(tmp_path: Path) -> None:
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "import subprocess, sys\n"
        "from telemetry_run import trace\n"
        "trace.get_tracer('parent').start_span('in-parent').end()\n"
        "subprocess.run([sys.executable, '-c', \"from telemetry_run import trace; "
        "trace.get_tracer('child').start_span('in-child').end()\"], check=True)\n"
    )
    result = launch(
        [PYTHON, "-m", "mypkg"],
        clean_env(
            PYTHONPATH=str(tmp_path),
            OTEL_TRACES_EXPORTER="console",
            TELEMETRY_RUN_CONSOLE_FORMAT="spans",
        ),
    )
    assert result.returncode == 0, result.stderr
    names = sorted(line.split()[0] for line in result.stdout.splitlines())
    assert names == ["'in-child'", "'in-parent'"]


def test_import_auto_bootstraps_without_the_launcher() -> None:
    code = (
        "import telemetry_run.auto\n"
        "import telemetry_run.auto\n"
        "from telemetry_run import trace\n"
        "trace.get_tracer('a').start_span('auto').end()\n"
    )
    env = clean_env(OTEL_TRACES_EXPORTER="console", TELEMETRY_RUN_CONSOLE_FORMAT="spans")
    result = subprocess.run(
        [PYTHON, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert [ln.split()[0] for ln in result.stdout.splitlines()] == ["'auto'"]


@pytest.fixture(scope="module")
def python_without_telemetry_run(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh venv's Python: same version as ours, but telemetry_run is not installed in it.

    (The test used /usr/bin/python3 and skipped where that one could import us, or where our
    sitecustomize failed some other way, so a broken sitecustomize read as a skip.)
    """
    folder = tmp_path_factory.mktemp("bare-venv")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    return str(folder / "bin" / "python")


@pytest.mark.parametrize("debug", ["true", "false"])
def test_an_interpreter_without_telemetry_run_runs_untouched(
    python_without_telemetry_run: str, tmp_path: Path, debug: str
) -> None:
    # A Python that cannot import us, but with our sitecustomize folder on PYTHONPATH (an app
    # that starts another venv's Python), runs the program; only the debug switch makes it
    # say, in one line, that this process runs uninstrumented.
    env = clean_env(TELEMETRY_RUN_DEBUG=debug)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "sitecustomize")
    env["PYTHONNOUSERSITE"] = "1"
    result = subprocess.run(
        [python_without_telemetry_run, "-c", "print('ok')"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    if debug == "true":
        (line,) = result.stderr.strip().splitlines()
        assert "cannot import telemetry_run" in line and "runs uninstrumented" in line
    else:
        assert result.stderr == ""


def test_list_shows_plugins_configuration_and_problems(plugins_dir: FakeDistribution) -> None:
    plugins_dir.add("hang_plugin", HANGING_EXPORTER)
    plugins_dir.add("broken_plugin", "raise ImportError('missing dependency xyz')\n")
    env = clean_env(
        PYTHONPATH=str(plugins_dir.root),
        OTEL_TRACES_EXPORTER="hang,otlp,zipkin",
        OTEL_BSP_MAX_QUEUE_SIZE="many",
        OTEL_SERVICE_NAME="checkout",
    )
    result = launch(["--list"], env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        "exporters: console: builtin, hang: hang_plugin, none: builtin, otlp: builtin-otlp" in out
    )
    assert "broken_plugin" in out
    assert "missing dependency xyz" in out
    assert "* OTEL_SERVICE_NAME" in out
    assert "checkout" in out
    assert "OTEL_BSP_MAX_QUEUE_SIZE='many' is not an integer" in out
    assert "OTEL_TRACES_EXPORTER names 'zipkin', which no installed plugin provides" in out
    assert "'otlp'" not in out.split("Warnings:")[1]  # the built-in OTLP exporter is found
    assert "hang'" not in out.split("Warnings:")[1]  # the plugin's exporter is found
