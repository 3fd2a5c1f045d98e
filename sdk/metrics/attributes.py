"""Attribute sets as series keys, built once.

Recording with the same attributes over and over is the common case (the same route, method
and status on every request), so a stream remembers the key it built for a dict by the dict's
identity and checks the contents with one dict comparison (C code, no re-hashing of the
values); code that wants even that gone passes an ``AttributeSet``, whose key is built once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from telemetry_run.sdk.trace.api import AttributeValue

__all__ = ["OVERFLOW_KEY", "AttributeSet", "Key", "freeze"]

Key = tuple[tuple[str, object], ...]

#: The series every attribute set beyond a stream's cardinality limit is folded into.
OVERFLOW_KEY: Final[Key] = (("otel.metric.overflow", True),)


def freeze(attributes: Mapping[str, AttributeValue] | None) -> Key:
    """The order-independent, hashable key of ``attributes`` (sequence values as tuples)."""
    if not attributes:
        return ()
    return tuple(
        sorted(
            (str(k), tuple(v) if isinstance(v, list | tuple) else v)
            for k, v in attributes.items()
            if isinstance(v, _SCALARS) or (isinstance(v, list | tuple) and _scalars(v))
        )
    )


_SCALARS: Final = (str, bool, int, float)


def _scalars(values: list[object] | tuple[object, ...]) -> bool:
    return all(isinstance(v, _SCALARS) for v in values)


class AttributeSet(Mapping[str, AttributeValue]):
    """Immutable attributes whose series key is computed once: ``counter.add(1, attrs)`` with
    the same ``AttributeSet`` costs one identity check per stream after the first call."""

    __slots__ = ("_attributes", "_hash", "key")

    def __init__(self, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        self._attributes = dict(attributes or {})
        self.key: Key = freeze(self._attributes)
        self._hash = hash(self.key)

    def __getitem__(self, name: str) -> AttributeValue:
        return self._attributes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._attributes)

    def __len__(self) -> int:
        return len(self._attributes)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AttributeSet):
            return self.key == other.key
        return isinstance(other, Mapping) and dict(self._attributes) == dict(other)

    def __repr__(self) -> str:
        return f"AttributeSet({self._attributes!r})"
