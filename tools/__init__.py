"""Maintenance commands run from a checkout (not installed with telemetry-run)."""
