"""The context API for application code, named as in ``opentelemetry.context``."""

from __future__ import annotations

from telemetry_run.sdk.context import Context, attach, detach, get_current, get_value, set_value

__all__ = ["Context", "attach", "detach", "get_current", "get_value", "set_value"]
