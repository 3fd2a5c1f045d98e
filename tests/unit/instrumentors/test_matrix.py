"""The version matrix is the instrumentor specs' matrix: the floor of each range is tested."""

from __future__ import annotations

import re
from pathlib import Path

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
    # Those of a distribution; a standard-library target is the Python the session runs.
    assert set(matrix.MATRIX) == {name for name, spec in _BY_NAME.items() if spec.distribution}
    for spec in SPECS:
        if spec.distribution is None:
            assert spec.matrix == (), spec.name
            continue
        versions = tuple(line.version for line in spec.matrix)
        assert matrix.MATRIX[spec.name] == (spec.distribution, versions), spec.name
        for line in spec.matrix:
            assert matrix.companions(spec.name, line.version) == line.companions
            assert matrix.pythons(spec.name, line.version), f"{spec.name} {line.version}: no Python"


def test_the_harness_entries_name_instrumentors_and_release_lines_that_exist() -> None:
    """The only hand-kept parts of tests/matrix.py cannot outlive what they are about."""
    root = Path(__file__).resolve().parents[3]
    assert set(matrix.SERVERS) <= set(_BY_NAME)
    assert set(matrix.EXTRA_TESTS) <= set(_BY_NAME)
    for framework, version in matrix.PYTEST_OPTIONS:
        assert version in matrix.MATRIX[framework][1], (framework, version)
    for framework in matrix.MATRIX:
        paths = matrix.tests(framework)
        assert paths[0] == f"tests/unit/instrumentors/test_{framework}.py"
        assert [path for path in paths if not (root / path).exists()] == []


def test_a_release_lines_python_specifier_picks_the_matrix_pythons() -> None:
    assert matrix.pythons("django", "4.2") == ("3.11", "3.12")  # python="<3.13"
    assert matrix.pythons("django", "latest") == ("3.12", "3.13")  # python=">=3.12"
    assert matrix.pythons("flask", "2.2") == matrix.PYTHONS
    assert matrix.companions("flask", "2.2") == ("werkzeug<3",)
    with pytest.raises(KeyError, match=r"no release line '9\.9'"):
        matrix.pythons("flask", "9.9")


def test_ci_runs_every_floor_on_its_oldest_python_and_every_latest_on_its_newest() -> None:
    for day in range(matrix.ROTATION_DAYS):
        cells = matrix.ci_cells(day)
        for framework, (_, versions) in matrix.MATRIX.items():
            floor = matrix.pythons(framework, versions[0])
            assert matrix.session_name(framework, versions[0], floor[0]) in cells
            latest = matrix.pythons(framework, "latest")
            assert matrix.session_name(framework, "latest", latest[-1]) in cells


def test_the_rotation_runs_the_whole_matrix_within_any_seven_consecutive_days() -> None:
    every = set(matrix.every_cell())
    # every spec's release lines on the Pythons each allows, once each
    lines = [(spec.name, line.version) for spec in SPECS for line in spec.matrix]
    assert len(every) == len(matrix.every_cell()) == sum(len(matrix.pythons(*c)) for c in lines)
    for first in (0, 3, 738_000):  # any start: the day number keeps counting over new year
        week = {cell for day in range(first, first + 7) for cell in matrix.ci_cells(day)}
        assert week == every


def test_the_daily_slices_share_the_rest_evenly() -> None:
    always = set(matrix.always_in_ci())
    sizes = [len(set(matrix.ci_cells(day)) - always) for day in range(matrix.ROTATION_DAYS)]
    assert max(sizes) - min(sizes) <= 1, sizes
