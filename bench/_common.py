"""What every benchmark here shares: ddtrace's quiet settings, running a worker process and
reading its result, stopping a helper process, the versions line of a report's header, and our
package laid out from a checkout's folders.

The scripts run as ``python bench/NAME.py``, so this folder is first on ``sys.path`` and they
import this module as ``_common``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "DD_NO_AGENT",
    "DD_QUIET",
    "TREE_FOLDERS",
    "package_tree",
    "run_worker",
    "stop_helper",
    "versions",
]

#: ddtrace traces for real, with everything that is not tracing turned off: no telemetry,
#: remote configuration, start-up logs, runtime metrics, data streams, profiler, crash tracker
#: or stats computation. Each script adds where (if anywhere) the agent is.
DD_QUIET = {
    "DD_TRACE_ENABLED": "true",
    "DD_SERVICE": "bench",
    "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
    "DD_REMOTE_CONFIGURATION_ENABLED": "false",
    "DD_TRACE_STARTUP_LOGS": "false",
    "DD_RUNTIME_METRICS_ENABLED": "false",
    "DD_DATA_STREAMS_ENABLED": "false",
    "DD_PROFILING_ENABLED": "false",
    "DD_CRASHTRACKING_ENABLED": "false",
    "DD_TRACE_STATS_COMPUTATION_ENABLED": "false",
}
#: No agent: a socket path that does not exist, so any attempt to reach one fails at once, locally.
DD_NO_AGENT = {"DD_TRACE_AGENT_URL": "unix:///nonexistent/telemetry-run-bench/apm.socket"}


def run_worker(cmd: Sequence[str], env: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """Run a benchmark's worker process and return the JSON object of the last ``{`` line it
    printed; on a timeout, a crash or no such line, ``{"error": why}`` (its stderr's last line)."""
    try:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, env=dict(env), check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                result: dict[str, Any] = json.loads(line)
            except ValueError:
                break
            else:
                return result
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail}"}


def stop_helper(proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """Close a helper's stdin (its signal to stop), wait for it, and kill it if it lingers."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def versions(*dists: str) -> str:
    """``"name version, ..."`` of the installed distributions, for a report's header."""
    found = []
    for dist in dists:
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} (not installed)")
    return ", ".join(found)


#: pyproject.toml's package-dir: the folders placed inside the ``telemetry_run`` package.
TREE_FOLDERS = {"sdk": "sdk", "instrumentors": "instrumentors", "sitecustomize": "sitecustomize"}


def package_tree(source: Path, into: Path) -> str:
    """A ``telemetry_run`` package copied from a checkout's folders into ``into``, which is
    returned for ``sys.path``: found like a regular install, not through an editable finder."""
    package = into / "telemetry_run"
    shutil.copytree(source / "distro", package)
    for folder, inside in TREE_FOLDERS.items():
        shutil.copytree(source / folder, package / inside)
    return str(into)
