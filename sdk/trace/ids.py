"""Trace and span id generation.

``random.getrandbits`` is fast and is reseeded in a forked child by the random module itself,
so two workers of a pre-fork server never mint the same ids.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["IdGenerator", "RandomIdGenerator", "id_functions"]


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


def id_functions(generator: IdGenerator) -> tuple[Callable[[], int], Callable[[], int]]:
    """(new span id, new trace id) callables for the tracer's hot path.

    For the built-in generator these are C-level calls to ``random.getrandbits``; their result
    may be 0 (probability 2**-64), so the caller writes ``new_id() or 1`` to keep ids valid.
    """
    if type(generator) is RandomIdGenerator:
        return functools.partial(random.getrandbits, 64), functools.partial(random.getrandbits, 128)
    return generator.generate_span_id, generator.generate_trace_id
