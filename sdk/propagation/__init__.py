"""Propagators move context in and out of carriers (HTTP headers, gRPC metadata, environ).

A propagator never raises on what it reads: malformed input is ignored and the context it was
given comes back unchanged. Carriers are reached through a Getter/Setter so one propagator serves
dicts, WSGI environs and header lists alike.
"""

from __future__ import annotations

from telemetry_run.sdk.propagation._carriers import (
    DefaultGetter,
    DefaultSetter,
    Getter,
    HeaderListGetter,
    HeaderListSetter,
    Setter,
    WSGIEnvironGetter,
    default_getter,
    default_setter,
)
from telemetry_run.sdk.propagation._textmap import (
    CompositePropagator,
    TextMapPropagator,
    extract,
    get_global_textmap,
    inject,
    set_global_textmap,
)

__all__ = [
    "CompositePropagator",
    "DefaultGetter",
    "DefaultSetter",
    "Getter",
    "HeaderListGetter",
    "HeaderListSetter",
    "Setter",
    "TextMapPropagator",
    "WSGIEnvironGetter",
    "default_getter",
    "default_setter",
    "extract",
    "get_global_textmap",
    "inject",
    "set_global_textmap",
]
