"""The flag that keeps our export path's own logging out of the export: set on a thread while
it captures a record or exports a batch (``bridge.py`` reads it for every record). Its own module
so that the processor, built at start-up, does not load the ``logging`` bridge before the
application imports ``logging``."""

from __future__ import annotations

import threading

__all__ = ["exporting"]


class _Local(threading.local):
    exporting = False


_local = _Local()


class exporting:  # a context manager used like a function
    """Within this block, this thread's records are not exported (our export path)."""

    __slots__ = ("_was",)

    def __enter__(self) -> None:
        self._was = _local.exporting
        _local.exporting = True

    def __exit__(self, *exc: object) -> None:
        _local.exporting = self._was
