"""``ContextThreadPoolExecutor``, exported by ``telemetry_run.sdk.context`` on first use.

Its own module because subclassing ``concurrent.futures.ThreadPoolExecutor`` imports
``concurrent.futures`` and ``logging``, which the context module (imported at every
instrumented start-up) does without.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from telemetry_run.sdk.context import wrap_with_current_context

__all__ = ["ContextThreadPoolExecutor"]

P = ParamSpec("P")
R = TypeVar("R")


class ContextThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in the context of the code that submitted them."""

    __module__ = "telemetry_run.sdk.context"  # where it is documented and imported from

    def submit(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[R]:
        return super().submit(wrap_with_current_context(fn), *args, **kwargs)

    def map(self, fn: Callable[..., R], *iterables: Any, **kwargs: Any) -> Iterator[R]:
        return super().map(wrap_with_current_context(fn), *iterables, **kwargs)
