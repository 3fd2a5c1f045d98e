"""Inject and extract context through the global propagator, as ``opentelemetry.propagate``."""

from __future__ import annotations

from telemetry_run.sdk.propagation import extract, get_global_textmap, inject, set_global_textmap

__all__ = ["extract", "get_global_textmap", "inject", "set_global_textmap"]
