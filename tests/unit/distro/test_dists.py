"""Our light metadata reader agrees with importlib.metadata on this very environment."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from telemetry_run import _dists


def test_versions_match_importlib_metadata() -> None:
    seen = 0
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        theirs = importlib.metadata.version(name)
        assert _dists.version(name) == theirs, name
        seen += 1
    assert seen > 20  # pluggy, wrapt, grpcio, pytest, ... are all here


@pytest.mark.parametrize("group", ["telemetry_run", "console_scripts", "pytest11"])
def test_entry_points_match_importlib_metadata(group: str) -> None:
    ours = {(ep.name, ep.value) for ep in _dists.entry_points(group)}
    theirs = {(ep.name, ep.value) for ep in importlib.metadata.entry_points(group=group)}
    assert ours == theirs


def test_a_distribution_folder_on_sys_path_is_found_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fancy_plugin.py").write_text("class Thing:\n    VALUE = 7\n")
    info = tmp_path / "Fancy.Plugin-2.5.dev1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Fancy.Plugin\nVersion: 2.5.dev1\n")
    (info / "entry_points.txt").write_text(
        "[other]\nx = nope\n\n[telemetry_run]\n# a comment\nfancy = fancy_plugin:Thing.VALUE\n"
    )
    legacy = tmp_path / "Old_Thing.egg-info"
    legacy.mkdir()
    (legacy / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: Old-Thing\nVersion: 0.3\n\nbody")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _dists.version("fancy-plugin") == "2.5.dev1"
    assert _dists.version("FANCY_PLUGIN") == "2.5.dev1"
    assert _dists.version("old.thing") == "0.3"
    assert _dists.version("not-installed-anywhere") is None
    (ep,) = [e for e in _dists.entry_points("telemetry_run") if e.name == "fancy"]
    assert ep.load() == 7
    assert ep.dist is not None
    assert ep.dist.version == "2.5.dev1"


def test_normalize() -> None:
    assert _dists.normalize("Foo__Bar.-baz") == "foo-bar-baz"


def test_bootstrap_does_not_import_importlib_metadata() -> None:
    import subprocess

    code = (
        "import sys\n"
        "from telemetry_run.plugins import Plugins\n"
        "from telemetry_run.config import Config\n"
        "from telemetry_run.instrumentation import plan\n"
        "p = Plugins.load()\n"
        "plan(p.instrumentor_specs(), Config.from_env({}))\n"
        "print('importlib.metadata' in sys.modules, 'wrapt' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.split() == ["False", "False"]
