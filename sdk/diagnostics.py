"""Self-diagnostics: counters of what happened to spans, and a rate-limited error handler.

A distro that drops spans silently is the complaint users have of every peer
(opentelemetry-python#3152): each drop is counted by reason here, the first drop of a run is
logged at once, and repeats of the same message are folded into one line per interval. The
string arguments of a diagnostic (a server's message, an exception's text, a header name) are
escaped and cut (``telemetry_run.sdk._printable``): what a peer sent cannot forge a log line.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from telemetry_run.sdk import forking
from telemetry_run.sdk._log import ERROR, WARNING, Logger, logger
from telemetry_run.sdk._printable import escape
from telemetry_run.sdk._record import FrozenRecord

if TYPE_CHECKING:
    import logging

__all__ = [
    "DROP_REASONS",
    "LIMITED",
    "Counter",
    "Diagnostics",
    "InternalError",
    "get_diagnostics",
]


DROP_REASONS: Final = ("queue_full", "export_failed", "rejected", "shutdown")
#: What span limits cut from spans that were kept (each span also carries its own counts).
LIMITED: Final = ("attributes", "events", "links")
#: The longest string argument a diagnostic prints (our own composed messages included).
_ARG_LIMIT: Final = 1000


class Counter:
    """A monotonically increasing count that threads can bump without a lock.

    ``itertools.count.__next__`` is one atomic C call under the GIL, where ``n += 1`` on an
    attribute is three bytecodes; the hot path (span start and end) pays one call.
    """

    __slots__ = ("_base", "_count", "incr")

    def __init__(self) -> None:
        self._count = itertools.count()
        self._base = 0
        # Components keep this bound method, so the count object is never replaced.
        self.incr: Callable[[], int] = self._count.__next__

    def add(self, n: int) -> None:
        if n > 0:
            # Advance by n in one C loop (islice consumes n items), as atomic as incr.
            next(itertools.islice(self._count, n - 1, n), None)

    @property
    def value(self) -> int:
        return self._raw() - self._base

    def _raw(self) -> int:
        # repr is "count(N)": reading never increments.
        return int(repr(self._count)[6:-1])

    def restart(self) -> None:
        """Count from zero again (a forked child accounts for its own spans only)."""
        self._base = self._raw()


class InternalError(FrozenRecord):
    """A bug in our own code, caught where it happened so the application carries on."""

    __match_args__ = ("where", "exception")
    __slots__ = __match_args__

    where: str
    exception: BaseException

    def __init__(self, where: str, exception: BaseException) -> None:
        object.__setattr__(self, "where", where)
        object.__setattr__(self, "exception", exception)


class Diagnostics:
    """The counters and the error handler of one SDK (one per process by default)."""

    def __init__(
        self,
        *,
        interval: float = 60.0,
        log: logging.Logger | Logger = logger,
        noun: str = "span",
    ) -> None:
        #: What the counters count, in messages ("span"; "log record" for the logs pipeline,
        #: whose counters keep the span names: produced, exported, dropped by reason).
        self.noun = noun
        self.spans_started = Counter()
        self.spans_ended = Counter()
        self.spans_queued = Counter()
        self.spans_exported = Counter()
        self.spans_retried = Counter()
        self.spans_dropped = {reason: Counter() for reason in DROP_REASONS}
        #: Invalid attribute values (wrong type, bad key) dropped with a diagnostic.
        self.attributes_dropped = Counter()
        self.over_limits = {kind: Counter() for kind in LIMITED}
        #: Metric data points handed to an exporter: exported, or dropped by a failed export.
        self.metric_points_exported = Counter()
        self.metric_points_dropped = Counter()
        self._interval = interval
        self._log = log
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}
        self._next_drop_log = dict.fromkeys(DROP_REASONS, 0.0)
        self._logged_drops = dict.fromkeys(DROP_REASONS, 0)
        #: Called with every InternalError; tests replace it to fail on swallowed bugs, and
        #: ``TELEMETRY_RUN_STRICT`` makes it raise.
        self.on_internal_error: Callable[[InternalError], None] | None = None
        _instances.add(self)

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` spans lost for ``reason``; the first loss of a run is logged at once.

        Under sustained overflow this runs for every span, so after the counter it costs one
        clock read until the next log line is due.
        """
        counter = self.spans_dropped[reason]
        if n == 1:
            counter.incr()
        else:
            counter.add(n)
        if time.monotonic() >= self._next_drop_log[reason]:
            self._log_drops(reason)

    def _log_drops(self, reason: str) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next_drop_log[reason]:
                return
            self._next_drop_log[reason] = now + self._interval
            total = self.spans_dropped[reason].value
            since = total - self._logged_drops[reason]
            self._logged_drops[reason] = total
        self._log.warning(
            "dropped %d %s(s) (%s) since the last report, %d in all; "
            "the exit line reports the final counts",
            since,
            self.noun,
            reason.replace("_", " "),
            total,
        )

    def warn(self, key: str, message: str, *args: object, level: int = WARNING) -> None:
        """Log ``message`` at most once per interval for ``key``, with the count it stood for."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self._interval:
                self._last[key] = (last[0], last[1] + 1)
                return
            suppressed = last[1] if last is not None else 0
            self._last[key] = (now, 0)
        args = tuple(escape(arg, _ARG_LIMIT) if isinstance(arg, str) else arg for arg in args)
        if suppressed:
            message += " (%d similar message(s) suppressed)"
            args = (*args, suppressed)
        self._log.log(level, message, *args)

    def internal_error(self, where: str, exc: BaseException) -> None:
        """Report a bug in our code once per place; the caller then falls back to doing nothing."""
        self.warn(
            f"internal:{where}",
            "internal error in %s: %s: %s",
            where,
            type(exc).__name__,
            str(exc),
            level=ERROR,
        )
        hook = self.on_internal_error
        if hook is not None:
            hook(InternalError(where, exc))

    def _after_fork_in_child(self) -> None:
        """Fresh locks and counts: the child reports what it did, not what its parent did.

        The parent's queued spans stay the parent's to export and count (the batch processor
        starts the child with an empty queue), so the child's exit line balances.
        """
        self._lock = threading.Lock()
        for counter in self._counters():
            counter.restart()
        self._last.clear()
        self._next_drop_log = dict.fromkeys(DROP_REASONS, 0.0)
        self._logged_drops = dict.fromkeys(DROP_REASONS, 0)

    def _counters(self) -> list[Counter]:
        return [
            self.spans_started,
            self.spans_ended,
            self.spans_queued,
            self.spans_exported,
            self.spans_retried,
            self.attributes_dropped,
            self.metric_points_exported,
            self.metric_points_dropped,
            *self.spans_dropped.values(),
            *self.over_limits.values(),
        ]

    def snapshot(self) -> dict[str, int]:
        """Every counter by name, for code and for the exit line."""
        values = {
            "started": self.spans_started.value,
            "ended": self.spans_ended.value,
            "produced": self.spans_queued.value,
            "exported": self.spans_exported.value,
            "retried": self.spans_retried.value,
            "attributes_dropped": self.attributes_dropped.value,
        }
        for reason, counter in self.spans_dropped.items():
            values[reason] = counter.value
        values["dropped"] = sum(values[r] for r in DROP_REASONS)
        for kind, counter in self.over_limits.items():
            values[f"{kind}_over_limit"] = counter.value
        values["metric_points_exported"] = self.metric_points_exported.value
        values["metric_points_dropped"] = self.metric_points_dropped.value
        return values


# A process forked while another thread was inside warn() or a drop report would inherit the
# lock held, and the child's first warning would wait forever: the child gets fresh locks.
_instances: weakref.WeakSet[Diagnostics] = weakref.WeakSet()


def _reinit_locks_after_fork() -> None:
    for diagnostics in list(_instances):
        diagnostics._after_fork_in_child()


forking.register(_reinit_locks_after_fork)

_default = Diagnostics()


def get_diagnostics() -> Diagnostics:
    """The process-wide diagnostics every SDK component uses unless given its own."""
    return _default
