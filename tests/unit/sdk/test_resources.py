"""Resource detection and merge rules."""

from __future__ import annotations

import os
import subprocess
import sys

from telemetry_run import __version__
from telemetry_run.sdk import Resource


def test_detected_attributes_are_local_and_complete() -> None:
    attributes = Resource.create().attributes
    assert attributes["service.name"] == f"unknown_service:{os.path.basename(sys.executable)}"
    assert attributes["telemetry.sdk.language"] == "python"
    assert attributes["telemetry.sdk.name"] == "telemetry-run"
    assert attributes["telemetry.sdk.version"] == __version__
    assert attributes["process.pid"] == os.getpid()
    assert attributes["process.runtime.name"] == "cpython"
    assert "host.name" in attributes


def test_user_attributes_win_over_detected_ones() -> None:
    resource = Resource.create({"service.name": "checkout", "deployment.environment": "prod"})
    assert resource.attributes["service.name"] == "checkout"
    assert resource.attributes["deployment.environment"] == "prod"
    assert resource.attributes["telemetry.sdk.language"] == "python"


def test_merge_prefers_the_updating_resource_and_resolves_schema_urls() -> None:
    old = Resource({"a": 1, "b": 1}, "https://s/1")
    new = Resource({"b": 2, "c": 3}, "https://s/1")
    merged = old.merge(new)
    assert dict(merged.attributes) == {"a": 1, "b": 2, "c": 3}
    assert merged.schema_url == "https://s/1"
    assert old.merge(Resource({})).schema_url == "https://s/1"
    assert Resource({}).merge(new).schema_url == "https://s/1"
    assert old.merge(Resource({}, "https://s/2")).schema_url == ""
    assert dict(old.attributes) == {"a": 1, "b": 1}  # merge never mutates


def test_forked_child_reports_its_own_pid() -> None:
    script = """
import os
from telemetry_run.sdk import TracerProvider
provider = TracerProvider(shutdown_on_exit=False)
pid = os.fork()
if pid == 0:
    ok = provider.resource.attributes["process.pid"] == os.getpid()
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
assert provider.resource.attributes["process.pid"] == os.getpid()
raise SystemExit(os.waitstatus_to_exitcode(status))
"""
    result = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert result.returncode == 0
