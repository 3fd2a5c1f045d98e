"""Server support the bootstrap sets up: uWSGI's C-level forks and the dev servers' reloaders.

``setup(state)`` runs once per bootstrap, after the exit hook is installed. Nothing here imports
a server: the reloaders are patched by post-import hooks when the application imports them, and
uWSGI is recognised by the module it creates in its own processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telemetry_run.bootstrap import Bootstrapped

__all__ = ["report", "setup"]


def setup(state: Bootstrapped | None) -> None:
    """Set up what the servers this process may run need (the bootstrap calls this once)."""
    if state is None or state.exit_hook is None:
        return  # OTEL_SDK_DISABLED: nothing to flush, nothing to repair
    from telemetry_run import _reloaders, _uwsgi

    _uwsgi.setup_if_running(state)
    _reloaders.install(state)


def report(where: str, exc: Exception) -> None:
    """Our failure, contained: the application's import or fork carries on (strict: raises)."""
    from telemetry_run.sdk.diagnostics import get_diagnostics

    get_diagnostics().internal_error(where, exc)
