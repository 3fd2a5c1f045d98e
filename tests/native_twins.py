"""Run a test module with a native twin of ``sdk/_speedups.c`` and with its Python one.

A module whose hot path has a native twin binds it to a module attribute (None where the
extension was not built); ``twins(module, *attributes)`` makes an autouse fixture, parametrized
``native`` and ``python``, that runs every test of the module once each way. Without the
extension the ``native`` cases skip, naming what is missing; in CI they fail instead
(``require_native``, which tests of the native module itself call too).
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from telemetry_run.sdk import _native
from tests.server_process import in_ci


def require_native(*, module_level: bool = False) -> None:
    """Skip (fail in CI) unless ``telemetry_run.sdk._speedups`` loads."""
    if _native.speedups is not None:
        return
    if in_ci():
        pytest.fail(f"CI must build telemetry_run.sdk._speedups: {_native.error}", pytrace=False)
    pytest.skip(
        f"telemetry_run.sdk._speedups is not built here (no C compiler at install?): "
        f"{_native.error}",
        allow_module_level=module_level,
    )


def twins(module: str, *attributes: str) -> Any:
    """An autouse fixture running each test with ``module``'s ``attributes`` native, then None."""

    @pytest.fixture(autouse=True, params=["native", "python"])
    def twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
        target = importlib.import_module(module)
        if request.param == "python":
            for attribute in attributes:
                monkeypatch.setattr(target, attribute, None)
        else:
            require_native()
        return str(request.param)

    return twin
