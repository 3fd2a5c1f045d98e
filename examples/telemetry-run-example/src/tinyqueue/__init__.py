"""A tiny in-process message queue: the library the example instrumentor traces.

It knows nothing about tracing. Like a real broker client, each message carries string headers
next to its body, which is where instrumentation puts the W3C trace context.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Empty", "Full", "Message", "Queue"]


class Empty(Exception):
    """``get`` found no message within its timeout."""


class Full(Exception):
    """``put`` on a queue that already holds ``maxsize`` messages."""


@dataclass(frozen=True)
class Message:
    """One message as ``put`` stored it: an id unique within its queue, the body, headers."""

    id: int
    body: object
    headers: Mapping[str, str] = field(default_factory=dict)


class Queue:
    """A thread-safe FIFO of messages; ``maxsize`` 0 means unbounded."""

    def __init__(self, name: str = "default", maxsize: int = 0) -> None:
        self.name = name
        self.maxsize = maxsize
        self._messages: deque[Message] = deque()
        self._next_id = 0
        self._not_empty = threading.Condition()

    def __len__(self) -> int:
        with self._not_empty:
            return len(self._messages)

    def put(self, body: object, *, headers: Mapping[str, str] | None = None) -> Message:
        """Append a message (with a copy of ``headers``) and return it; raises ``Full``."""
        with self._not_empty:
            if self.maxsize and len(self._messages) >= self.maxsize:
                raise Full(f"queue {self.name!r} is full ({self.maxsize} messages)")
            self._next_id += 1
            message = Message(self._next_id, body, dict(headers or {}))
            self._messages.append(message)
            self._not_empty.notify()
        return message

    def get(self, timeout: float = 0.0) -> Message:
        """Remove and return the oldest message, waiting up to ``timeout`` s; raises ``Empty``."""
        with self._not_empty:
            if not self._not_empty.wait_for(lambda: bool(self._messages), timeout):
                raise Empty(f"queue {self.name!r} is empty")
            return self._messages.popleft()
