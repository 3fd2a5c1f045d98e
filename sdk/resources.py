"""Resource: the attributes of the process that produced telemetry (service, host, runtime).

Detection is local and bounded: no network, no cloud metadata probes at start-up.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Final

from telemetry_run.sdk._version import __version__
from telemetry_run.sdk.trace.api import AttributeValue

__all__ = ["SERVICE_NAME", "Resource", "default_service_name", "detect"]

SERVICE_NAME: Final = "service.name"


class Resource:
    """Immutable attributes; ``merge`` gives the other resource's values precedence."""

    __slots__ = ("_attributes", "_schema_url")

    def __init__(self, attributes: Mapping[str, AttributeValue], schema_url: str = ""):
        self._attributes = dict(attributes)
        self._schema_url = schema_url

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        return self._attributes

    @property
    def schema_url(self) -> str:
        return self._schema_url

    def merge(self, other: Resource) -> Resource:
        """``other`` (the updating resource) wins on conflicts, as the specification says.

        The schema url is kept when only one side has one or both agree; a conflict leaves
        the merged resource without one.
        """
        if not self._schema_url or self._schema_url == other._schema_url:
            schema = other._schema_url
        elif not other._schema_url:
            schema = self._schema_url
        else:
            schema = ""
        return Resource({**self._attributes, **other._attributes}, schema)

    @classmethod
    def create(
        cls, attributes: Mapping[str, AttributeValue] | None = None, schema_url: str = ""
    ) -> Resource:
        """Detected attributes, overridden by ``attributes`` (the user's win)."""
        return detect().merge(Resource(attributes or {}, schema_url))

    @classmethod
    def get_empty(cls) -> Resource:
        return _EMPTY

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Resource)
            and self._attributes == other._attributes
            and self._schema_url == other._schema_url
        )

    def __hash__(self) -> int:
        return hash((tuple(sorted(self._attributes.items())), self._schema_url))

    def __repr__(self) -> str:
        return f"Resource({self._attributes!r})"


_EMPTY: Final = Resource({})


def default_service_name() -> str:
    """``unknown_service:<process executable name>``, the semantic conventions' default."""
    return f"unknown_service:{os.path.basename(sys.executable) or 'python'}"


def detect() -> Resource:
    """The SDK, process, runtime and host attributes, all read locally."""
    attributes: dict[str, AttributeValue] = {
        SERVICE_NAME: default_service_name(),
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "telemetry-run",
        "telemetry.sdk.version": __version__,
        "process.pid": os.getpid(),
        "process.executable.name": os.path.basename(sys.executable),
        "process.executable.path": sys.executable,
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": ".".join(map(str, sys.version_info[:3])),
        "process.runtime.description": sys.version,
        "os.type": {"win32": "windows", "cygwin": "windows"}.get(sys.platform, sys.platform),
    }
    # os.uname, not socket/platform: both are local reads, and those modules cost start-up time.
    uname = os.uname() if hasattr(os, "uname") else None
    if uname is not None:
        attributes["host.name"] = uname.nodename
    arch = uname.machine if uname is not None else ""
    if arch:
        attributes["host.arch"] = {"x86_64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    return Resource(attributes)
