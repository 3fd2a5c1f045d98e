"""Getters and setters: how a propagator reads and writes one kind of carrier.

Propagators only ever ask "the values under this header name" and "set this header", so the
same propagator serves plain dicts, WSGI environs and (name, value) header lists. A getter is
handed whatever the application passes in, so it never raises: an odd carrier reads as empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any, Protocol, TypeVar

__all__ = [
    "DefaultGetter",
    "DefaultSetter",
    "Getter",
    "HeaderListGetter",
    "HeaderListSetter",
    "Setter",
    "WSGIEnvironGetter",
    "default_getter",
    "default_setter",
]

CarrierT_contra = TypeVar("CarrierT_contra", contravariant=True)

# A header list entry: a (name, value) pair of str (gRPC metadata) or bytes (ASGI scope).
HeaderPair = Sequence[str | bytes]


class Getter(Protocol[CarrierT_contra]):
    """Reads values from a carrier; ``get`` returns None when the key is absent."""

    def get(self, carrier: CarrierT_contra, key: str) -> list[str] | None: ...

    def keys(self, carrier: CarrierT_contra) -> list[str]: ...


class Setter(Protocol[CarrierT_contra]):
    """Writes one value into a carrier, replacing what was there under that key."""

    def set(self, carrier: CarrierT_contra, key: str, value: str) -> None: ...


def _as_values(value: object) -> list[str] | None:
    """A header value as a list of str: a str, bytes, or a list/tuple of those."""
    if type(value) is str:
        return [value]
    if isinstance(value, str):
        return [str(value)]
    if isinstance(value, bytes | bytearray):
        return [value.decode("latin-1")]
    if isinstance(value, list | tuple):
        values = [
            v if isinstance(v, str) else v.decode("latin-1")
            for v in value
            if isinstance(v, str | bytes | bytearray)
        ]
        return values or None
    return None


class DefaultGetter:
    """For dict-like carriers whose values are a str or a list of str.

    The exact key is tried first; failing that, a key differing only in case (W3C: receivers
    must accept header names in any case).
    """

    __slots__ = ()

    def get(self, carrier: Mapping[Any, Any], key: str) -> list[str] | None:
        try:
            value = carrier.get(key)
            if value is None:
                size = len(key)
                folded = key.lower()
                for name in carrier:
                    if type(name) is str and len(name) == size and name.lower() == folded:
                        value = carrier[name]
                        break
                else:
                    return None
        except Exception:  # noqa: BLE001  # a foreign carrier must not break the request
            return None
        if type(value) is str:
            return [value]
        return _as_values(value)

    def keys(self, carrier: Mapping[Any, Any]) -> list[str]:
        try:
            return [k for k in carrier if isinstance(k, str)]
        except Exception:  # noqa: BLE001  # a foreign carrier must not break the request
            return []


class DefaultSetter:
    """For dict-like carriers: ``carrier[key] = value``."""

    __slots__ = ()

    def set(self, carrier: MutableMapping[str, Any], key: str, value: str) -> None:
        carrier[key] = value


default_getter = DefaultGetter()
default_setter = DefaultSetter()


_ENVIRON_NAMES: dict[str, str] = {}  # header name -> environ key, for the few names asked


class WSGIEnvironGetter:
    """For a WSGI environ: header ``traceparent`` is found as ``HTTP_TRACEPARENT``."""

    __slots__ = ()

    def get(self, carrier: Mapping[Any, Any], key: str) -> list[str] | None:
        name = _ENVIRON_NAMES.get(key)
        if name is None:
            name = "HTTP_" + key.upper().replace("-", "_")
            if len(_ENVIRON_NAMES) < 256:
                _ENVIRON_NAMES[key] = name
        try:
            value = carrier.get(name)
        except Exception:  # noqa: BLE001  # a foreign carrier must not break the request
            return None
        return None if value is None else _as_values(value)

    def keys(self, carrier: Mapping[Any, Any]) -> list[str]:
        try:
            return [
                k[5:].lower().replace("_", "-")
                for k in carrier
                if isinstance(k, str) and k.startswith("HTTP_")
            ]
        except Exception:  # noqa: BLE001  # a foreign carrier must not break the request
            return []


def _name_of(entry: object) -> str | None:
    """The header name of one (name, value) entry, or None for a malformed entry."""
    if not isinstance(entry, tuple | list) or len(entry) != 2:
        return None
    name = entry[0]
    if isinstance(name, str):
        return name
    if isinstance(name, bytes | bytearray):
        return name.decode("latin-1")
    return None


class HeaderListGetter:
    """For a list of (name, value) pairs: gRPC metadata, ASGI ``scope["headers"]``.

    Names compare case-insensitively; every matching entry contributes a value, in order.
    """

    __slots__ = ()

    def get(self, carrier: Iterable[HeaderPair], key: str) -> list[str] | None:
        folded = key.lower()
        values: list[str] = []
        try:
            for entry in carrier:
                name = _name_of(entry)
                if name is None or name.lower() != folded:
                    continue
                value = entry[1]
                if isinstance(value, str):
                    values.append(value)
                elif isinstance(value, bytes | bytearray):
                    values.append(value.decode("latin-1"))
        except Exception:  # noqa: BLE001  # a foreign carrier must not break the request
            return None
        return values or None

    def keys(self, carrier: Iterable[HeaderPair]) -> list[str]:
        try:
            return [name for name in map(_name_of, carrier) if name is not None]
        except Exception:  # noqa: BLE001  # a foreign carrier must not break the request
            return []


class HeaderListSetter:
    """For a mutable list of (name, value) pairs.

    Entries with the same name (any case) are replaced, so injecting twice (a retried request)
    never sends a duplicate ``traceparent``, which the receiver would have to reject. The new
    pair is bytes when ``as_bytes`` says so, or (left as None) when the list already holds bytes
    names, as an ASGI message does; otherwise str.
    """

    __slots__ = ("_as_bytes",)

    def __init__(self, as_bytes: bool | None = None):
        self._as_bytes = as_bytes

    def set(self, carrier: MutableSequence[Any], key: str, value: str) -> None:
        folded = key.lower()
        as_bytes = self._as_bytes
        if as_bytes is None:
            as_bytes = any(
                isinstance(entry, tuple | list) and entry and isinstance(entry[0], bytes)
                for entry in carrier
            )
        kept = [entry for entry in carrier if (_name_of(entry) or "").lower() != folded]
        if len(kept) != len(carrier):
            carrier[:] = kept
        if as_bytes:
            carrier.append((key.encode("latin-1"), value.encode("latin-1")))
        else:
            carrier.append((key, value))
