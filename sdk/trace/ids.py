"""Trace and span id generation.

``random.getrandbits`` is fast and is reseeded in a forked child by the random module itself,
so two workers of a pre-fork server never mint the same ids.
"""

from __future__ import annotations

import random
from typing import Protocol, runtime_checkable

__all__ = ["IdGenerator", "RandomIdGenerator"]


@runtime_checkable
class IdGenerator(Protocol):
    def generate_span_id(self) -> int: ...

    def generate_trace_id(self) -> int: ...


class RandomIdGenerator:
    """Uniformly random non-zero ids: 64-bit span ids, 128-bit trace ids."""

    __slots__ = ()

    def generate_span_id(self) -> int:
        span_id = random.getrandbits(64)
        while span_id == 0:
            span_id = random.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = random.getrandbits(128)
        while trace_id == 0:
            trace_id = random.getrandbits(128)
        return trace_id
