"""The instrumentor conformance suite: the promises every instrumentor keeps, as pytest tests.

In a plugin's test module::

    from telemetry_run.testing.contract import contract_tests

    contract_tests(globals(), spec=CELERY_SPEC, exercise="tests.exercise:send_one_task")

adds one ``test_contract_<check>`` per check. ``exercise`` names a function (``module:function``)
that uses the target library once, so that an instrumented target produces at least one span.
Each check runs in a fresh interpreter, because "the target is not imported until the application
imports it" can only be seen with a clean ``sys.modules``:

- ``patch_before_import`` / ``import_before_patch``: both orders patch, and spans come out;
  installing imports neither the target nor the instrumentor's module;
- ``double_instrument``: instrumenting twice (also from a second instance) wraps once;
- ``uninstrument_restores``: ``uninstrument()`` puts back the very same objects (``is``) the
  Patcher recorded, and the target's functions are all the originals again;
- ``version_outside_requires``: a ``requires`` excluding the installed version is skipped with a
  reason naming it, and patches nothing (not added for a standard-library target, whose spec has
  no ``requires``: there is no other version to exclude);
- ``disabled_by_name``: ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` keeps it out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from telemetry_run.instrumentors.base import InstrumentorSpec

__all__ = ["CHECKS", "contract_tests", "run_check"]

CHECKS: Final = (
    "patch_before_import",
    "import_before_patch",
    "double_instrument",
    "uninstrument_restores",
    "version_outside_requires",
    "disabled_by_name",
)

_CHILD: Final = Path(__file__).with_name("_contract_child.py")
_SKIP: Final = 3


def run_check(
    check: str,
    *,
    spec: InstrumentorSpec,
    exercise: str,
    plugin: str = "contract",
    sys_path: Sequence[str] | None = None,
    timeout: float = 60.0,
) -> None:
    """Run one check in a fresh interpreter; fails (or skips) the calling test accordingly.

    ``sys_path`` is the child's ``sys.path`` (default: this process's), so ``spec.load`` and
    ``exercise`` import there as they do here.
    """
    if check not in CHECKS:
        raise ValueError(f"unknown contract check {check!r}; the checks are {CHECKS}")
    payload = {
        "check": check,
        "plugin": plugin,
        "exercise": exercise,
        "sys_path": list(sys.path if sys_path is None else sys_path),
        "spec": {
            "name": spec.name,
            "modules": list(spec.modules),
            "requires": spec.requires,
            "load": spec.load,
            "description": spec.description,
        },
    }
    proc = subprocess.run(
        [sys.executable, "-I", str(_CHILD), json.dumps(payload)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode == _SKIP:
        pytest.skip(f"{check}: {proc.stdout.strip()}")
    if proc.returncode != 0:
        output = (proc.stderr + proc.stdout).strip()
        pytest.fail(
            f"instrumentor {spec.name!r} breaks the contract ({check}):\n{output}", pytrace=False
        )


def _make_test(check: str, kwargs: dict[str, Any]) -> Callable[[], None]:
    def test() -> None:
        run_check(check, **kwargs)

    test.__name__ = test.__qualname__ = f"test_contract_{check}"
    test.__doc__ = f"The instrumentor contract: {check.replace('_', ' ')}."
    return test


def contract_tests(
    namespace: MutableMapping[str, Any],
    *,
    spec: InstrumentorSpec,
    exercise: str,
    plugin: str = "contract",
    sys_path: Sequence[str] | None = None,
    timeout: float = 60.0,
    checks: Sequence[str] = CHECKS,
) -> None:
    """Add a ``test_contract_<check>`` function to ``namespace`` (a module's ``globals()``).

    A standard-library target (``spec.requires`` empty) gets no ``version_outside_requires``
    test: it has no distribution whose version a range could exclude, and a test that always
    skips says nothing.
    """
    kwargs: dict[str, Any] = {
        "spec": spec,
        "exercise": exercise,
        "plugin": plugin,
        "sys_path": sys_path,
        "timeout": timeout,
    }
    for check in checks:
        if check == "version_outside_requires" and not spec.requires:
            continue
        test = _make_test(check, kwargs)
        namespace[test.__name__] = test
