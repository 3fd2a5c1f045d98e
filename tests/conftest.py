"""Shared fixtures: every test starts from a clean global state and fails on swallowed bugs."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from telemetry_run.sdk.diagnostics import Diagnostics, InternalError, get_diagnostics
from telemetry_run.sdk.metrics import global_provider as metrics_globals
from telemetry_run.sdk.propagation import _textmap
from telemetry_run.sdk.trace import globals as trace_globals

# The fixtures we ship to plugin authors (span_recorder, otlp_receiver) serve our tests too;
# the database tests share one throwaway PostgreSQL (``postgres``).
pytest_plugins = ["telemetry_run.testing", "tests.postgres_server"]


def pytest_configure(config: pytest.Config) -> None:
    # A background job of a non-interactive shell (`nox ... &`) starts with SIGINT ignored, and
    # every process a test starts would inherit that: the Ctrl-C tests need a terminal's default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers", "internal_errors: the test expects internal errors to be reported"
    )


@pytest.fixture(autouse=True)
def _clean_globals(request: pytest.FixtureRequest) -> Iterator[list[InternalError]]:
    """Reset the global provider and fail the test on an internal error it did not expect.

    Our wrappers contain their own bugs so applications carry on; in tests that containment must
    not hide them (sentry's conftest does the same).
    """
    errors: list[InternalError] = []
    diagnostics = get_diagnostics()
    previous = diagnostics.on_internal_error
    diagnostics.on_internal_error = errors.append
    trace_globals._reset_for_tests()
    metrics_globals._reset_for_tests()
    _textmap._global = None  # the default propagators again
    yield errors
    diagnostics.on_internal_error = previous
    trace_globals._reset_for_tests()
    metrics_globals._reset_for_tests()
    _textmap._global = None
    if errors and request.node.get_closest_marker("internal_errors") is None:
        pytest.fail(f"internal errors were reported: {errors!r}")


@pytest.fixture
def diagnostics(request: pytest.FixtureRequest, _clean_globals: list[InternalError]) -> Diagnostics:
    """A private Diagnostics whose internal errors fail the test unless it is marked."""
    diag = Diagnostics()
    diag.on_internal_error = _clean_globals.append
    return diag
