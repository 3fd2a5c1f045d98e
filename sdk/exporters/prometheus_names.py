"""Prometheus names for OpenTelemetry metrics, per the specification's compatibility rules.

A metric name keeps ``[a-zA-Z0-9_:]`` (anything else becomes ``_``, runs of ``_`` collapse, a
leading digit gets a ``_`` prefix); the unit becomes a word suffix (``s`` -> ``_seconds``,
``By`` -> ``_bytes``, ``m/s`` -> ``_meters_per_second``; ``{...}`` annotations are dropped);
monotonic sums end in ``_total``. Kept apart from the text format so both are tested alone.
"""

from __future__ import annotations

import re

_UNIT_WORDS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
_PER_WORDS = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}

_patterns: dict[str, re.Pattern[str]] = {}


def _pattern(name: str, source: str) -> re.Pattern[str]:
    """Compiled on first use: no regex compiles on the start-up path."""
    found = _patterns.get(name)
    if found is None:
        found = _patterns[name] = re.compile(source)
    return found


def _sanitize(text: str, allowed: str) -> str:
    text = _pattern(allowed, allowed).sub("_", text)
    text = _pattern("runs", "__+").sub("_", text)
    if text[:1].isdigit():
        text = "_" + text
    return text


def unit_suffix(unit: str) -> str:
    """The unit as Prometheus words: ``""`` when it has none we can say (``1``, ``{request}``)."""
    unit = _pattern("braces", r"\{[^}]*\}").sub("", unit).strip()
    if not unit or unit == "1":
        return ""
    if "/" in unit:
        top, _, bottom = unit.partition("/")
        top_word = _UNIT_WORDS.get(top, top) if top not in ("", "1") else ""
        bottom_word = _PER_WORDS.get(bottom, bottom)
        words = f"{top_word}_per_{bottom_word}" if top_word else f"per_{bottom_word}"
    else:
        words = _UNIT_WORDS.get(unit, unit)
    return _sanitize(words, r"[^a-zA-Z0-9_:]").strip("_")


def metric_name(name: str, unit: str, *, monotonic_sum: bool = False) -> str:
    """The Prometheus family name of an OpenTelemetry metric (without ``_bucket`` and such)."""
    result = _sanitize(name, r"[^a-zA-Z0-9_:]")
    suffix = unit_suffix(unit)
    if suffix and not result.endswith("_" + suffix):
        result = f"{result}_{suffix}"
    if monotonic_sum and not result.endswith("_total"):
        result += "_total"
    return result


def label_name(key: str) -> str:
    """An attribute key as a label name: ``[a-zA-Z0-9_]`` only, never a leading digit."""
    return _sanitize(key, r"[^a-zA-Z0-9_]") or "_"
