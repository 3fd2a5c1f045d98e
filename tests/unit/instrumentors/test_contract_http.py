"""The instrumentor contract suite on the built-in Flask and requests instrumentors."""

from __future__ import annotations

from telemetry_run.instrumentors.plugin import SPECS
from telemetry_run.testing.contract import CHECKS, contract_tests

_BY_NAME = {spec.name: spec for spec in SPECS}
_EXERCISES = {
    "flask": "tests.unit.instrumentors.exercises:flask_request",
    "requests": "tests.unit.instrumentors.exercises:requests_call",
}

for _name, _exercise in _EXERCISES.items():
    _checks: dict[str, object] = {}
    contract_tests(_checks, spec=_BY_NAME[_name], exercise=_exercise)
    for _check in CHECKS:
        globals()[f"test_{_name}_contract_{_check}"] = _checks[f"test_contract_{_check}"]
