"""gRPC call metadata as the trace context's carrier, and call details that carry our copy.

Outgoing metadata is copied (the caller's is never changed) and the propagators write into the
copy with lower-cased keys: gRPC rejects a call whose metadata has an upper-case key, and a
propagator may use one (``X-B3-...``). Incoming metadata is read as a list of pairs.
"""

from __future__ import annotations

import collections
from typing import Any, Final

import grpc

from telemetry_run.sdk.propagation import HeaderListGetter, HeaderListSetter

__all__ = [
    "GETTER",
    "SETTER",
    "ClientCallDetails",
    "aio_details",
    "incoming",
    "outgoing",
    "sync_details",
]

GETTER: Final = HeaderListGetter()
_pairs: Final = HeaderListSetter(as_bytes=False)


class _MetadataSetter:
    """Adds propagation headers to a list of metadata pairs, keys lower-cased."""

    __slots__ = ()

    def set(self, carrier: list[Any], key: str, value: str) -> None:
        _pairs.set(carrier, key.lower(), value)


SETTER: Final = _MetadataSetter()


def outgoing(details: Any) -> list[Any]:
    """A copy of a client call's metadata, for the propagators to write into."""
    metadata = getattr(details, "metadata", None)
    return list(metadata) if metadata else []


def incoming(details: Any) -> Any:
    """A handled call's metadata (pairs), or an empty tuple."""
    return getattr(details, "invocation_metadata", None) or ()


class ClientCallDetails(
    collections.namedtuple(  # as grpc builds its own details type
        "ClientCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]  # grpc is untyped
):
    """A sync call's details with our copy of the metadata."""

    __slots__ = ()


def sync_details(details: Any, metadata: list[Any]) -> Any:
    """``details`` of a sync call, with ``metadata`` in place of the caller's."""
    return ClientCallDetails(
        details.method,
        getattr(details, "timeout", None),
        metadata,
        getattr(details, "credentials", None),
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )


def aio_details(details: Any, metadata: list[Any]) -> Any:
    """``details`` of a grpc.aio call, with ``metadata`` in place of the caller's."""
    return grpc.aio.ClientCallDetails(
        details.method,
        getattr(details, "timeout", None),
        grpc.aio.Metadata(*metadata),
        getattr(details, "credentials", None),
        getattr(details, "wait_for_ready", None),
    )
