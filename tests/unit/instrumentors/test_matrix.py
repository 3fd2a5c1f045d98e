"""The version matrix and the instrumentor specs name one range: the floor is tested."""

from __future__ import annotations

import re

import pytest

from telemetry_run.instrumentors.plugin import SPECS
from tests import matrix

_BY_NAME = {spec.name: spec for spec in SPECS}


@pytest.mark.parametrize("framework", sorted(matrix.MATRIX))
def test_the_lowest_tested_line_is_the_declared_minimum(framework: str) -> None:
    distribution, versions = matrix.MATRIX[framework]
    spec = _BY_NAME[framework]
    assert spec.distribution == distribution
    floor = re.search(r">=\s*([\d.]+)", spec.requires)
    assert floor is not None, f"{spec.requires!r} has no minimum"
    assert versions[0] == floor.group(1), f"{framework}: matrix starts at {versions[0]}"
    assert versions[-1] == "latest"  # the newest release is always tested


def test_every_built_in_instrumentor_is_in_the_matrix() -> None:
    assert set(matrix.MATRIX) == set(_BY_NAME)
    assert set(matrix.TESTS) == set(matrix.MATRIX) == set(matrix.SERVERS)
