"""``telemetry-run [--list|--version|--help] CMD ARGS...``: trace a command without changing it.

The launcher puts our ``sitecustomize`` folder first on ``PYTHONPATH`` and ``exec``s the command:
same PID, the command's own exit code and signals, no process in between. Every Python
interpreter the command starts (gunicorn workers, reloader children) then bootstraps itself.
This module runs before the application: it imports neither the SDK (beyond its lazy-export
helper) nor any framework.
"""

from __future__ import annotations

import os
import sys

# The launcher runs before the application and must stay cheap: no typing, shutil or
# collections.abc at run time (mypy reads names called TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import NoReturn, TextIO

__all__ = ["child_environment", "main", "sitecustomize_dir"]

USAGE = """\
usage: telemetry-run [--list | --doctor [--json] | --version | --help] [--] COMMAND [ARGS...]
       telemetry-run --view [VIEW OPTIONS] [--] [COMMAND [ARGS...]]

Runs COMMAND with OpenTelemetry tracing: Python processes it starts are instrumented at start-up
and export spans as the OTEL_* environment variables say. Examples:

  telemetry-run python app.py
  telemetry-run gunicorn -w 4 app:app
  OTEL_SERVICE_NAME=checkout OTEL_TRACES_EXPORTER=console telemetry-run flask run

options:
  --list      show instrumentors, plugins and the effective configuration, then exit
  --doctor    check the configuration and each exporter's endpoint live (DNS, TCP, TLS,
              protocol, a test span); exit 0 only if telemetry would arrive (--json: as JSON)
  --version   show the version and exit
  --view      a local trace viewer (web page) receiving OTLP; runs COMMAND exporting to it
              (see telemetry-run --view --help)
  --help, -h  show this help and exit
"""

EXIT_USAGE = 2
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


def sitecustomize_dir() -> str:
    """The folder holding our ``sitecustomize.py`` (installed or editable)."""
    beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sitecustomize")
    if os.path.isfile(os.path.join(beside, "sitecustomize.py")):
        return beside  # a regular install: no import machinery needed
    import importlib.util  # an editable install maps the folder elsewhere

    spec = importlib.util.find_spec("telemetry_run.sitecustomize")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("telemetry_run.sitecustomize is not installed")
    return os.path.abspath(next(iter(spec.submodule_search_locations)))


# uWSGI forks its workers in C. A worker forked while another thread of the master (our export
# or metrics thread, or one of the app's) holds the GIL waits for that thread's GIL forever and
# never serves (unbit/uwsgi#1149, #1369). This option (uWSGI 2.0.21+; older releases ignore
# unknown UWSGI_* variables) makes uWSGI take the GIL and the import lock around each fork and
# run Python's at-fork hooks. Inert outside uWSGI; a value the user set is kept.
UWSGI_FORK_HOOKS = "UWSGI_PY_CALL_UWSGI_FORK_HOOKS"


def child_environment(environ: Mapping[str, str], site_dir: str) -> dict[str, str]:
    """A copy of ``environ`` with ``site_dir`` first on PYTHONPATH, the user's entries after,
    and uWSGI told to keep the interpreter consistent across its forks."""
    env = dict(environ)
    entries = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    entries = [p for p in entries if os.path.abspath(p) != site_dir]  # nested launchers: once
    env["PYTHONPATH"] = os.pathsep.join([site_dir, *entries])
    env.setdefault(UWSGI_FORK_HOOKS, "true")
    return env


def _fail(message: str, code: int, err: TextIO) -> int:
    from telemetry_run.sdk._printable import escape  # a command name may hold anything

    print(f"telemetry-run: {escape(message, None)}", file=err)
    return code


def resolve(command: str, environ: Mapping[str, str]) -> str | None:
    """The executable ``command`` names, as a shell would find it."""
    if os.sep in command:
        return command if os.path.exists(command) else None
    for directory in environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or os.curdir, command)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def run(argv: Sequence[str], environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """Parse ``argv`` (without the program name); return an exit code or exec the command."""
    args = list(argv)
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option == "--":
            break
        if option in ("--help", "-h"):
            out.write(USAGE)
            return 0
        if option == "--version":
            from telemetry_run._version import __version__

            print(f"telemetry-run {__version__}", file=out)
            return 0
        if option == "--doctor":
            from telemetry_run.doctor import main as doctor

            return doctor(args, environ, out, err)
        if option == "--list":
            from telemetry_run.listing import render

            out.write(render(environ))
            return 0
        if option == "--view":
            from telemetry_run.viewer.cli import run as view

            return view(args, environ, out, err)
        return _fail(f"unknown option {option!r} (see telemetry-run --help)", EXIT_USAGE, err)
    if not args:
        return _fail(
            "missing COMMAND (usage: telemetry-run [options] COMMAND [ARGS...])", EXIT_USAGE, err
        )

    command = args[0]
    path = resolve(command, environ)
    if path is None:
        return _fail(f"{command}: command not found", EXIT_NOT_FOUND, err)
    env = child_environment(environ, sitecustomize_dir())
    try:
        os.execve(path, args, env)
    except PermissionError:
        return _fail(f"{command}: permission denied", EXIT_NOT_EXECUTABLE, err)
    except OSError as exc:
        return _fail(f"{command}: cannot run it: {exc.strerror}", EXIT_NOT_EXECUTABLE, err)
    raise AssertionError("unreachable: execve returned")  # pragma: no cover


def main() -> NoReturn:
    sys.exit(run(sys.argv[1:], os.environ, sys.stdout, sys.stderr))
