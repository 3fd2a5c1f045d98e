"""What the contract suite runs against the instrumented library: one put and one get."""

from __future__ import annotations


def put_and_get() -> None:
    import tinyqueue

    queue = tinyqueue.Queue("contract")
    queue.put(b"payload")
    queue.get()
