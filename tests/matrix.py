"""The framework version matrix, as data: read by noxfile.py and checked by a unit test.

Each framework's versions are release lines (``"2.2"`` installs ``flask==2.2.*``) named as
the sessions are (``flask-2.2``); ``"latest"`` installs the newest release. The first entry
is the instrumentor spec's ``requires`` minimum (tests/unit/instrumentors/test_matrix.py).
"""

from __future__ import annotations

from typing import Final

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
    "flask": ("gunicorn>=22",),
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
