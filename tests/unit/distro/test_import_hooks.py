"""Post-import hooks fire once, after the module ran, with the module's own loader restored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import importlib, sys
from telemetry_run._import_hooks import register_post_import_hook

seen = []
register_post_import_hook(lambda m: seen.append((m.__name__, m.VALUE)), "hooked_mod")
register_post_import_hook(lambda m: seen.append(("second", m.VALUE)), "hooked_mod")
register_post_import_hook(lambda m: seen.append(("pkg.sub", m.X)), "hooked_pkg.sub")
assert "hooked_mod" not in sys.modules and seen == []

import hooked_mod
assert seen == [("hooked_mod", 1), ("second", 1)], seen
assert type(hooked_mod.__loader__).__name__ == "SourceFileLoader"
assert type(hooked_mod.__spec__.loader).__name__ == "SourceFileLoader"
importlib.reload(hooked_mod)  # the real loader again: no hook fires twice
assert len(seen) == 2

import hooked_pkg.sub
assert seen[-1] == ("pkg.sub", 2)

late = []
register_post_import_hook(lambda m: late.append(m.__name__), "hooked_mod")  # already imported
assert late == ["hooked_mod"]

import json  # unhooked modules import normally
print("ok")
"""


def test_post_import_hooks(tmp_path: Path) -> None:
    (tmp_path / "hooked_mod.py").write_text("VALUE = 1\n")
    pkg = tmp_path / "hooked_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "sub.py").write_text("X = 2\n")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == "ok", result.stderr


MIDWAY = r"""
import sys
from telemetry_run._import_hooks import register_post_import_hook

seen = []


def on_helper(module):
    # Runs while outer_mod is still executing (it imports helper_mod before defining DONE).
    register_post_import_hook(lambda m: seen.append(("late", m.DONE)), "outer_mod")


register_post_import_hook(lambda m: seen.append(("outer", m.DONE)), "outer_mod")
register_post_import_hook(on_helper, "helper_mod")
import outer_mod
assert seen == [("outer", True), ("late", True)], seen
print("ok")
"""


def test_a_hook_registered_while_its_module_runs_fires_when_it_has_run(tmp_path: Path) -> None:
    """The OpenTelemetry API bridge's case: ``opentelemetry.propagate`` imports
    ``opentelemetry.trace`` halfway through; a hook on the former registered then must see it
    whole."""
    (tmp_path / "outer_mod.py").write_text("import helper_mod\nDONE = True\n")
    (tmp_path / "helper_mod.py").write_text("")
    result = subprocess.run(
        [sys.executable, "-c", MIDWAY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == "ok", result.stderr
