"""Installed distributions, read straight from their metadata folders.

The bootstrap needs two answers at every interpreter start: the entry points of the
``telemetry_run`` group, and a distribution's installed version. ``importlib.metadata`` gives
both but adds ~30 ms to a start-up (email, pathlib, zipfile come with it, and it parses every
distribution's metadata; ``bench/startup_parts.py``, row ``dists``); this reads the same
``*.dist-info``/``*.egg-info`` folders on ``sys.path`` with ``os.scandir`` and a few small file
reads. The first folder found for a name wins, as for imports. Zipped eggs are not read.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Protocol

__all__ = [
    "Distribution",
    "EntryPoint",
    "EntryPointLike",
    "entry_points",
    "normalize",
    "version",
]


class EntryPointLike(Protocol):
    """What the plugin loader needs of an entry point (ours or importlib.metadata's)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


def normalize(name: str) -> str:
    """The PEP 503 form: lower case, runs of ``-_.`` as one ``-``."""
    out = []
    previous_dash = False
    for char in name.lower():
        if char in "-_.":
            if not previous_dash:
                out.append("-")
            previous_dash = True
        else:
            out.append(char)
            previous_dash = False
    return "".join(out)


class Distribution:
    __slots__ = ("_version", "name", "path")

    def __init__(self, name: str, path: str, version: str | None):
        self.name = name
        self.path = path
        self._version = version

    @property
    def version(self) -> str | None:
        if self._version is None:
            self._version = _read_version(self.path)
        return self._version

    def read_text(self, filename: str) -> str | None:
        try:
            with open(os.path.join(self.path, filename), encoding="utf-8") as handle:
                return handle.read()
        except OSError:
            return None


class EntryPoint:
    """``name = module:attribute`` in a group; ``load()`` imports and returns the object."""

    __slots__ = ("dist", "group", "name", "value")

    def __init__(self, name: str, value: str, group: str, dist: Distribution | None = None):
        self.name = name
        self.value = value
        self.group = group
        self.dist = dist

    def load(self) -> Any:
        module_name, _, attribute = self.value.partition(":")
        target: Any = importlib.import_module(module_name.strip())
        for part in attribute.strip().split(".") if attribute.strip() else ():
            target = getattr(target, part)
        return target

    def __repr__(self) -> str:
        return f"EntryPoint({self.name!r}, {self.value!r}, {self.group!r})"


def _read_version(path: str) -> str | None:
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(path, filename), encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        break  # the headers end at the first blank line
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip()
        except OSError:
            continue
    return None


def _parse_folder(entry: str, folder: str) -> tuple[str, str | None] | None:
    """(normalized name, version from the folder name or None) of a metadata folder."""
    if folder.endswith(".dist-info"):
        stem = folder[: -len(".dist-info")]
    elif folder.endswith(".egg-info"):
        stem = folder[: -len(".egg-info")]
    else:
        return None
    name, _, rest = stem.partition("-")
    found_version = rest.split("-")[0] if rest else None
    return normalize(name), found_version or None


_cache: dict[str, Distribution] | None = None
_cache_path: list[str] = []


def distributions() -> dict[str, Distribution]:
    """Every distribution on ``sys.path`` by normalized name (scanned again if sys.path moved)."""
    global _cache, _cache_path
    if _cache is not None and _cache_path == sys.path:
        return _cache
    found: dict[str, Distribution] = {}
    for entry in sys.path:
        directory = entry or os.curdir
        try:
            with os.scandir(directory) as items:
                names = [item.name for item in items if item.name.endswith("-info")]
        except OSError:
            continue  # a zip file, a missing folder
        for folder in sorted(names):
            parsed = _parse_folder(directory, folder)
            if parsed is None or parsed[0] in found:
                continue
            name, found_version = parsed
            found[name] = Distribution(name, os.path.join(directory, folder), found_version)
    _cache, _cache_path = found, list(sys.path)
    return found


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group`` across installed distributions."""
    result = []
    for dist in distributions().values():
        text = dist.read_text("entry_points.txt")
        if not text or f"[{group}]" not in text:
            continue
        section = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
                continue
            if section == group and "=" in line:
                name, _, value = line.partition("=")
                result.append(EntryPoint(name.strip(), value.strip(), group, dist))
    return result


def version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    dist = distributions().get(normalize(name))
    return dist.version if dist is not None else None
