"""Run a test module with a native twin of ``sdk/_speedups.c`` and with its Python one.

A module whose hot path has a native twin binds it to a module attribute (None where the
extension was not built); ``twins(module, *attributes)`` makes an autouse fixture, parametrized
``native`` and ``python``, that runs every test of the module once each way. Without the
extension the ``native`` cases skip, naming what is missing; in CI they fail instead.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.server_process import in_ci


def twins(module: str, *attributes: str) -> Any:
    """An autouse fixture running each test with ``module``'s ``attributes`` native, then None."""

    @pytest.fixture(autouse=True, params=["native", "python"])
    def twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
        target = importlib.import_module(module)
        if request.param == "python":
            for attribute in attributes:
                monkeypatch.setattr(target, attribute, None)
        elif any(getattr(target, attribute) is None for attribute in attributes):
            if in_ci():
                pytest.fail(
                    "CI must build telemetry_run.sdk._speedups (is a C compiler installed?)"
                )
            pytest.skip("telemetry_run.sdk._speedups is not built here (no C compiler at install)")
        return str(request.param)

    return twin
