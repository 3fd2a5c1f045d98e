"""The framework version matrix, as data: read by noxfile.py and checked by a unit test.

Each framework's versions are release lines (``"2.2"`` installs ``flask==2.2.*``) named as
the sessions are (``flask-2.2``); ``"latest"`` installs the newest release. The first entry
is the instrumentor spec's ``requires`` minimum (tests/unit/instrumentors/test_matrix.py).
"""

from __future__ import annotations

from typing import Final

#: The Pythons every session runs on, oldest first.
PYTHONS: Final[tuple[str, ...]] = ("3.11", "3.12", "3.13")

#: The days over which CI's rotation runs the rest of the matrix (CI runs once a day at least):
#: a cell outside ``always_in_ci`` runs when the day number (``date.toordinal()``) falls on it.
ROTATION_DAYS: Final = 7

#: framework -> (distribution, release lines oldest first).
MATRIX: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "flask": ("flask", ("2.2", "2.3", "3.0", "3.1", "latest")),
    "django": ("django", ("4.2", "5.2", "6.0", "latest")),
    "requests": ("requests", ("2.28", "2.32", "latest")),
    "grpc": ("grpcio", ("1.66", "latest")),
}

#: Companion pins, each with its reason.
COMPANIONS: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    # Flask 2.2 imports werkzeug.urls.url_quote, which Werkzeug 3 removed.
    ("flask", "2.2"): ("werkzeug<3",),
}

#: Extra pytest options of a cell, each with its reason.
PYTEST_OPTIONS: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    # Flask 2.2 itself calls pkgutil.get_loader and find_loader, deprecated since Python 3.12;
    # the tests turn warnings into errors, and these are Flask's, not ours.
    ("flask", "2.2"): (
        "-W",
        "ignore:'pkgutil.get_loader' is deprecated:DeprecationWarning",
        "-W",
        "ignore:'pkgutil.find_loader' is deprecated:DeprecationWarning",
    ),
}

#: (framework, version) -> the Pythons it runs on, where not all of them. Django 4.2 supports
#: Python up to 3.12; Django 6 needs Python 3.12 or newer.
PYTHONS_FOR: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("django", "4.2"): ("3.11", "3.12"),
    ("django", "6.0"): ("3.12", "3.13"),
    ("django", "latest"): ("3.12", "3.13"),
}

#: What the servers of each framework's integration tests need beside it.
SERVERS: Final[dict[str, tuple[str, ...]]] = {
    "flask": ("gunicorn>=22", "requests>=2.28"),  # requests: the Level 2 test's outgoing call
    "django": ("gunicorn>=22", "uvicorn>=0.30"),
    "requests": (),
    "grpc": (),
}

#: The tests each framework session runs.
TESTS: Final[dict[str, tuple[str, ...]]] = {
    "flask": ("tests/unit/instrumentors/test_flask.py", "tests/integration/flask"),
    "django": ("tests/unit/instrumentors/test_django.py", "tests/integration/django"),
    "requests": ("tests/unit/instrumentors/test_requests.py", "tests/integration/requests"),
    "grpc": (
        "tests/unit/instrumentors/test_grpc.py",
        "tests/unit/instrumentors/test_rpc_semconv.py",
        "tests/integration/grpc",
    ),
}


def requirement(framework: str, version: str) -> str:
    """``flask==2.2.*`` (or ``flask`` for latest)."""
    distribution = MATRIX[framework][0]
    return distribution if version == "latest" else f"{distribution}=={version}.*"


def pythons(framework: str, version: str) -> tuple[str, ...]:
    """The Pythons a cell runs on, oldest first."""
    return PYTHONS_FOR.get((framework, version), PYTHONS)


def session_name(framework: str, version: str, python: str) -> str:
    return f"{framework}-{version}-{python}"


def every_cell() -> list[str]:
    """Every session of the matrix, by name."""
    return [
        session_name(framework, version, python)
        for framework, (_, versions) in MATRIX.items()
        for version in versions
        for python in pythons(framework, version)
    ]


def always_in_ci() -> list[str]:
    """The cells every CI run runs: each framework's declared floor on the oldest and the newest
    Python it supports (the range our ``requires`` promises, at both ends), and its latest
    release on every Python (what users install today)."""
    cells = []
    for framework, (_, versions) in MATRIX.items():
        floor = pythons(framework, versions[0])
        cells += [session_name(framework, versions[0], p) for p in sorted({floor[0], floor[-1]})]
        cells += [session_name(framework, "latest", p) for p in pythons(framework, "latest")]
    return cells


def rotation_slot(cell: str) -> int:
    """The day (0 to ROTATION_DAYS - 1) a cell outside ``always_in_ci`` runs in CI."""
    rest = [name for name in every_cell() if name not in always_in_ci()]
    return rest.index(cell) % ROTATION_DAYS


def ci_cells(day: int) -> list[str]:
    """What CI runs on a day: ``always_in_ci`` plus that day's slice of the rest, so the whole
    matrix runs within ROTATION_DAYS consecutive days."""
    always = always_in_ci()
    return [
        name
        for name in every_cell()
        if name in always or rotation_slot(name) == day % ROTATION_DAYS
    ]
