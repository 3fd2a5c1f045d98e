"""``Record`` and ``FrozenRecord``: what ``@dataclass`` gave our small value classes, for less.

These classes load in every instrumented process, where ``dataclasses`` generates each class's
methods with ``exec`` at import (``bench/startup_parts.py``, row ``records``: about 9 ms more for
the dozen classes a start-up defines, against well under one here). A subclass lists its fields, in
order, in ``__match_args__`` (and in ``__slots__``) and writes its own ``__init__``; the base
derives ``repr``, ``==``, ``copy.replace`` (``__replace__``), pickling and, for a frozen record,
``hash`` and the refusal to assign, from that list. ``_repr_skip`` and ``_compare_skip`` name
the fields a dataclass would mark ``repr=False`` / ``compare=False``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["FrozenRecord", "Record"]


class Record:
    """A mutable record (an ordinary ``@dataclass``: compared by value, so unhashable)."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()
    _repr_skip: ClassVar[frozenset[str]] = frozenset()
    _compare_skip: ClassVar[frozenset[str]] = frozenset()

    def _values(self) -> tuple[Any, ...]:
        skip = self._compare_skip
        return tuple(getattr(self, name) for name in self.__match_args__ if name not in skip)

    def __repr__(self) -> str:
        skip = self._repr_skip
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.__match_args__ if name not in skip
        )
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    __hash__: ClassVar[Any] = None  # as @dataclass(eq=True): compared by value, unhashable

    def __replace__(self, **changes: Any) -> Any:
        """``copy.replace(record, field=value)`` (Python 3.13), as for a dataclass."""
        values = {name: getattr(self, name) for name in self.__match_args__}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__qualname__} has no field {sorted(unknown)[0]!r}")
        values.update(changes)
        return type(self)(**values)

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__match_args__, state, strict=True):
            object.__setattr__(self, name, value)


class FrozenRecord(Record):
    """An immutable, hashable record (``@dataclass(frozen=True)``); ``__init__`` assigns its
    fields with ``object.__setattr__``."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")

    def __hash__(self) -> int:
        return hash(self._values())
