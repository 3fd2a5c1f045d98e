"""The framework version matrix, derived from the built-in instrumentor specs: read by
noxfile.py and checked by a unit test.

Each spec's ``matrix`` lists the release lines its tests run against (``"2.2"`` installs
``flask==2.2.*``), the floor of its ``requires`` first and ``"latest"`` (the newest release)
last; a line's ``python`` and ``companions`` say on which Pythons it runs and what it needs
beside it. Sessions are named ``flask-2.2-3.11``. What only the test harness needs (tools
beside the framework, extra test files, pytest options) is below, empty by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from telemetry_run.instrumentors.base import InstrumentorSpec, ReleaseLine
from telemetry_run.instrumentors.plugin import SPECS

ROOT: Final = Path(__file__).resolve().parent.parent

#: The Pythons every session runs on, oldest first.
PYTHONS: Final[tuple[str, ...]] = ("3.11", "3.12", "3.13")

#: The days over which CI's rotation runs the rest of the matrix (CI runs once a day at least):
#: a cell outside ``always_in_ci`` runs when the day number (``date.toordinal()``) falls on it.
ROTATION_DAYS: Final = 7

_SPECS: Final[dict[str, InstrumentorSpec]] = {spec.name: spec for spec in SPECS if spec.matrix}

#: framework -> (distribution, release lines oldest first), from the specs.
MATRIX: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    name: (spec.distribution or name, tuple(line.version for line in spec.matrix))
    for name, spec in _SPECS.items()
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

#: What the servers of a framework's integration tests need beside it, where anything.
SERVERS: Final[dict[str, tuple[str, ...]]] = {
    "flask": ("gunicorn>=22", "requests>=2.28"),  # requests: the Level 2 test's outgoing call
    "django": ("gunicorn>=22", "uvicorn>=0.30"),
    # The ASGI tests: FastAPI under uvicorn and gunicorn's UvicornWorker, a websocket client,
    # and Django's ASGI handler (left to its own instrumentor).
    "asgi": ("fastapi", "gunicorn>=22", "websockets>=12", "django>=4.2"),
    # The bridge's tests: an API span in a Flask view, a requests call inside an API span.
    "opentelemetry_api": ("flask>=3.0", "requests>=2.28"),
    # requests over urllib3: the one-CLIENT-span test.
    "urllib3": ("requests>=2.28",),
    # Celery's tests use the Redis broker (redis-server itself is Debian's, from .ci/run).
    "celery": ("redis>=5.0",),
    # The asyncio engine's test runs over psycopg (3) against the throwaway PostgreSQL.
    "sqlalchemy": ("psycopg[binary]>=3.1", "greenlet"),
}

#: Test files a framework session runs besides its own (``tests()`` names those).
EXTRA_TESTS: Final[dict[str, tuple[str, ...]]] = {
    "grpc": ("tests/unit/instrumentors/test_rpc_semconv.py",),
    # What the HTTP clients do alike: each client's session runs that client's cases.
    **dict.fromkeys(
        ("requests", "urllib3", "httpx", "aiohttp_client"),
        ("tests/unit/instrumentors/test_http_clients_alike.py",),
    ),
}


def _line(framework: str, version: str) -> ReleaseLine:
    for line in _SPECS[framework].matrix:
        if line.version == version:
            return line
    raise KeyError(f"{framework} has no release line {version!r}")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _python_allowed(python: str, specifier: str) -> bool:
    """Whether ``python`` (``"3.12"``) satisfies ``specifier`` (``">=3.12"``, ``"<3.13,>3.10"``)."""
    have = _version(python)
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        operator = clause.rstrip("0123456789.").strip()
        want = _version(clause[len(operator) :].strip())
        allowed = {
            ">=": have >= want,
            "<=": have <= want,
            ">": have > want,
            "<": have < want,
            "==": have == want,
            "!=": have != want,
        }
        if operator not in allowed:
            raise ValueError(f"unsupported Python specifier {clause!r}")
        if not allowed[operator]:
            return False
    return True


def companions(framework: str, version: str) -> tuple[str, ...]:
    """The pins a cell installs beside the framework (``werkzeug<3`` for Flask 2.2)."""
    return _line(framework, version).companions


def servers(framework: str) -> tuple[str, ...]:
    """What a framework's integration tests need beside it."""
    return SERVERS.get(framework, ())


def tests(framework: str) -> tuple[str, ...]:
    """The tests a framework session runs: its unit test file, the extra ones, and its
    integration folder when it has one."""
    own = [f"tests/unit/instrumentors/test_{framework}.py", *EXTRA_TESTS.get(framework, ())]
    integration = f"tests/integration/{framework}"
    if (ROOT / integration).is_dir():
        own.append(integration)
    return tuple(own)


def requirement(framework: str, version: str) -> str:
    """``flask==2.2.*`` (or ``flask`` for latest)."""
    distribution = MATRIX[framework][0]
    return distribution if version == "latest" else f"{distribution}=={version}.*"


def pythons(framework: str, version: str) -> tuple[str, ...]:
    """The Pythons a cell runs on, oldest first: those of ``PYTHONS`` its line allows."""
    specifier = _line(framework, version).python
    return tuple(python for python in PYTHONS if _python_allowed(python, specifier))


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
    """The cells every CI run runs: each framework's declared floor on the oldest Python it
    supports and its latest release on the newest (both ends of the range our ``requires``
    promises, each where it is likeliest to break); the other Pythons rotate, so CI's time
    grows by two sessions per library, not five."""
    cells = []
    for framework, (_, versions) in MATRIX.items():
        cells.append(session_name(framework, versions[0], pythons(framework, versions[0])[0]))
        cells.append(session_name(framework, "latest", pythons(framework, "latest")[-1]))
    return cells


def _rotation_slots() -> dict[str, int]:
    """Each cell outside ``always_in_ci``, by name, with its rotation day."""
    always = set(always_in_ci())
    rest = [name for name in every_cell() if name not in always]
    return {name: index % ROTATION_DAYS for index, name in enumerate(rest)}


def rotation_slot(cell: str) -> int:
    """The day (0 to ROTATION_DAYS - 1) a cell outside ``always_in_ci`` runs in CI."""
    return _rotation_slots()[cell]


def ci_cells(day: int) -> list[str]:
    """What CI runs on a day: ``always_in_ci`` plus that day's slice of the rest, so the whole
    matrix runs within ROTATION_DAYS consecutive days."""
    always = set(always_in_ci())
    slots = _rotation_slots()
    return [
        name for name in every_cell() if name in always or slots.get(name) == day % ROTATION_DAYS
    ]
