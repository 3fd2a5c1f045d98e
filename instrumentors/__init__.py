"""Instrumentors for frameworks and clients (later issues)."""
