"""What we say about the peers is what the peers' installed code says.

These tests read a peer's source (found, never imported: importing ddtrace patches), so they run
in the lint session, which installs the peers; in CI a missing peer is a failure, elsewhere a
skip naming it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tools import config_reference


def _peer_source(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"{name} is not installed: the lint session installs it")
        pytest.skip(f"{name} (the bench extra) is not installed")
    return Path(spec.origin).parent


def test_every_ddtrace_name_given_is_one_ddtrace_reads() -> None:
    registered = {line.split("`")[1] for line in config_reference.table().splitlines()[2:]}
    assert set(config_reference.DDTRACE_NAMES) <= registered  # no row left for a renamed one
    settings = _peer_source("ddtrace") / "internal" / "settings"
    known = "\n".join(path.read_text() for path in settings.rglob("*.py"))
    for peer, _ in config_reference.DDTRACE_NAMES.values():
        assert f'"{peer}"' in known, f"ddtrace does not read {peer}"
