"""What the OTLP exporters retry, how long they wait, and the loop both transports share.

The OTLP specification defines the transient failures: gRPC CANCELLED, DEADLINE_EXCEEDED,
ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and RESOURCE_EXHAUSTED only when the server
sends ``google.rpc.RetryInfo`` (without it the receiver is out of capacity for good); HTTP
429, 502, 503, 504 and connection failures. They are retried with exponential backoff and
jitter; a delay the server asks for (``RetryInfo.retry_delay`` in the ``grpc-status-details-bin``
trailer, the HTTP ``Retry-After`` header) replaces the computed one, within these rules (a
collector may be broken or hostile, and the rules are the same for both transports):

- Floor: no wait is shorter than the backoff's first step (``RetryPolicy.backoff(0)``: a random
  time between half ``initial_backoff`` and all of it, 0.5 to 1 s by default, so a fleet told
  "now" does not come back in step). ``Retry-After: 0`` or a zero ``RetryInfo`` delay means "as
  soon as allowed", never "at once": a receiver answering 429 with ``Retry-After: 0`` used to get
  thousands of requests a second.
- Cap: no wait ends past the export deadline. When the next attempt could not start in time the
  export fails at once (retryable: the batch processor keeps the spans) rather than sleeping into
  the deadline.
- Ignored (the usual backoff applies, nothing is raised): a delay that is negative, longer than
  ``MAX_SERVER_DELAY`` (an hour: no collector means that, and ``Retry-After: 10**30`` would
  otherwise be one more way to stall an exporter), not a number, not plain ASCII digits
  (``str.isdigit`` also accepts Arabic-Indic or superscript digits, which ``int`` then reads or
  chokes on), more than ``_MAX_DIGITS`` digits, an HTTP-date without a zone or in the past, and a
  ``RetryInfo`` whose ``Duration`` is negative or has nanos out of range.

Waits are on a ``threading.Event``, so ``shutdown()`` ends a backoff at once.

An outage outlives one export: an exporter keeps an ``Outage``, its transient failures in a row
across exports. Retrying inside every export through the whole timeout, batch after batch, is
what kept the spans made after a collector came back waiting behind the backlog: the worker
thread was asleep in a backoff while the collector was already fine. So only the first export
to fail spends its retries (within the export timeout); while the outage lasts, each later export
is a probe, one attempt and no retry, and the batch processor, which keeps the spans queued,
spaces the probes (``processors/batch.py``). The first answer ends the outage, so the export
after a recovery retries as usual again.

``google.rpc.Status`` and ``google.rpc.RetryInfo`` are two tiny messages; they are read (and, for
the test receiver, written) by hand here rather than pulling ``googleapis-common-protos`` into
every application's environment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from telemetry_run.sdk.exporters import ExportResult

__all__ = [
    "GRPC_NOT_RETRYABLE",
    "GRPC_RETRYABLE",
    "HTTP_RETRYABLE",
    "MAX_SERVER_DELAY",
    "Outage",
    "Outcome",
    "RetryPolicy",
    "encode_status",
    "grpc_retryable",
    "http_retryable",
    "parse_retry_after",
    "parse_status",
    "retry_loop",
    "server_delay",
]

_monotonic = time.monotonic

#: gRPC status codes (by name) that are transient whatever the server says.
GRPC_RETRYABLE: Final = frozenset(
    {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"}
)
#: Codes that say the request or the credentials are wrong: retrying cannot help.
GRPC_NOT_RETRYABLE: Final = frozenset(
    {
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "FAILED_PRECONDITION",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAUTHENTICATED",
    }
)
#: HTTP statuses that are transient (connection failures are too, handled by the transport).
HTTP_RETRYABLE: Final = frozenset({429, 502, 503, 504})

_RETRY_INFO_TYPE: Final = "type.googleapis.com/google.rpc.RetryInfo"

#: The longest wait a server may ask for, in seconds; a longer one is ignored (module docstring).
MAX_SERVER_DELAY: Final = 3600.0
#: ``Retry-After`` delta-seconds longer than this are ignored unread (``int()`` of thousands of
#: digits is slow, and beyond 4300 digits it raises).
_MAX_DIGITS: Final = 10
_ASCII_DIGITS: Final = frozenset("0123456789")


def grpc_retryable(code: str, retry_delay: float | None) -> bool:
    """Is a failure with gRPC status ``code`` (its name) worth another attempt?"""
    if code in GRPC_RETRYABLE:
        return True
    return code == "RESOURCE_EXHAUSTED" and retry_delay is not None


def http_retryable(status: int) -> bool:
    return status in HTTP_RETRYABLE


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP-date; None when absent or ignored
    (the rules are in the module docstring). Never raises, whatever the header holds.

    ``now`` is the wall clock (``time.time()``) the HTTP-date is compared with.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if set(text) <= _ASCII_DIGITS:
        return server_delay(int(text)) if len(text) <= _MAX_DIGITS else None
    if len(text) > 64:  # an HTTP-date is 29 characters; anything much longer is not one
        return None
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:  # an HTTP-date is always GMT; a zone-less one is not valid
            return None
        wall = time.time() if now is None else now
        left = when.timestamp() - wall
    except Exception:  # noqa: BLE001  # whatever the date parser trips on, the header is ignored
        return None
    return server_delay(left) if left > 0 else None  # a date in the past is ignored


def server_delay(seconds: float) -> float | None:
    """``seconds`` as a wait a server may ask for, or None when it is to be ignored (negative,
    not a number, longer than ``MAX_SERVER_DELAY``). The floor is applied by the loop."""
    delay = float(seconds)
    if not 0.0 <= delay <= MAX_SERVER_DELAY:  # NaN fails both comparisons
        return None
    return delay


# -- google.rpc.Status / RetryInfo, by hand ---------------------------------------------------
#
# Status    { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
# Any       { string type_url = 1; bytes value = 2; }
# RetryInfo { google.protobuf.Duration retry_delay = 1; }
# Duration  { int64 seconds = 1; int32 nanos = 2; }


class _Malformed(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Malformed("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of every field: varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise _Malformed("truncated field")
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise _Malformed(f"unsupported wire type {wire}")
    if pos != len(data):
        raise _Malformed("truncated fixed field")
    return out


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


class Status:
    """The parts of a ``google.rpc.Status`` an exporter uses."""

    __slots__ = ("code", "message", "retry_delay")

    def __init__(self, code: int, message: str, retry_delay: float | None) -> None:
        self.code = code
        self.message = message
        self.retry_delay = retry_delay

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Status) and (self.code, self.message, self.retry_delay) == (
            other.code,
            other.message,
            other.retry_delay,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message, self.retry_delay))

    def __repr__(self) -> str:
        return f"Status({self.code!r}, {self.message!r}, {self.retry_delay!r})"


def parse_status(data: bytes) -> Status | None:
    """A serialized ``google.rpc.Status`` (the ``grpc-status-details-bin`` trailer, an OTLP/HTTP
    error body); None when ``data`` is not one."""
    try:
        code, message, delay = 0, "", None
        for number, value in _fields(data):
            if number == 1 and isinstance(value, int):
                code = _signed64(value)
            elif number == 2 and isinstance(value, bytes):
                message = value.decode("utf-8", "replace")
            elif number == 3 and isinstance(value, bytes):
                found = _retry_delay_of_any(value)
                if found is not None:
                    delay = found
        return Status(code, message, delay)
    except _Malformed:
        return None


def _retry_delay_of_any(data: bytes) -> float | None:
    type_url, payload = "", b""
    for number, value in _fields(data):
        if number == 1 and isinstance(value, bytes):
            type_url = value.decode("utf-8", "replace")
        elif number == 2 and isinstance(value, bytes):
            payload = value
    if type_url != _RETRY_INFO_TYPE:
        return None
    seconds = nanos = 0
    for number, value in _fields(payload):
        if number != 1 or not isinstance(value, bytes):
            continue
        for dnumber, dvalue in _fields(value):
            if dnumber == 1 and isinstance(dvalue, int):
                seconds = _signed64(dvalue)
            elif dnumber == 2 and isinstance(dvalue, int):
                nanos = _signed64(dvalue)
    if seconds < 0 or not 0 <= nanos < 1_000_000_000:  # negative, or not a valid Duration
        return None
    return server_delay(seconds + nanos / 1e9)


def _put_varint(out: bytearray, value: int) -> None:
    value &= (1 << 64) - 1
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_bytes(out: bytearray, number: int, payload: bytes) -> None:
    _put_varint(out, number << 3 | 2)
    _put_varint(out, len(payload))
    out += payload


def encode_status(code: int, message: str = "", retry_delay: float | None = None) -> bytes:
    """A serialized ``google.rpc.Status``, with a ``RetryInfo`` detail when ``retry_delay`` is
    given (what a receiver sends; the test receiver uses it)."""
    out = bytearray()
    if code:
        _put_varint(out, 1 << 3)
        _put_varint(out, code)
    if message:
        _put_bytes(out, 2, message.encode())
    if retry_delay is not None:
        seconds = int(retry_delay)
        nanos = round((retry_delay - seconds) * 1e9)
        duration = bytearray()
        if seconds:
            _put_varint(duration, 1 << 3)
            _put_varint(duration, seconds)
        if nanos:
            _put_varint(duration, 2 << 3)
            _put_varint(duration, nanos)
        retry_info = bytearray()
        _put_bytes(retry_info, 1, bytes(duration))
        any_ = bytearray()
        _put_bytes(any_, 1, _RETRY_INFO_TYPE.encode())
        _put_bytes(any_, 2, bytes(retry_info))
        _put_bytes(out, 3, bytes(any_))
    return bytes(out)


# -- backoff and the loop -----------------------------------------------------------------------


class RetryPolicy:
    """Exponential backoff with jitter: attempt ``n`` (from 0) waits a random time in
    ``[d/2, d]`` where ``d = min(max_backoff, initial_backoff * multiplier**n)``, in seconds.

    The jitter keeps a fleet of processes that lost the same collector from retrying in step.
    (Plain classes here, not dataclasses: this module loads at every instrumented start-up.)
    """

    __slots__ = ("initial_backoff", "max_backoff", "multiplier")

    def __init__(
        self, initial_backoff: float = 1.0, multiplier: float = 2.0, max_backoff: float = 32.0
    ) -> None:
        if initial_backoff < 0 or multiplier < 1 or max_backoff < initial_backoff:
            raise ValueError(
                "need 0 <= initial_backoff <= max_backoff and multiplier >= 1, got "
                f"{initial_backoff}, {multiplier}, {max_backoff}"
            )
        self.initial_backoff = initial_backoff
        self.multiplier = multiplier
        self.max_backoff = max_backoff

    def backoff(self, attempt: int, rand: Callable[[], float] | None = None) -> float:
        if rand is None:
            import random

            rand = random.random
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** min(attempt, 64))
        return ceiling / 2 + rand() * ceiling / 2

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(initial_backoff={self.initial_backoff}, multiplier={self.multiplier}, "
            f"max_backoff={self.max_backoff})"
        )


class Outage:
    """An exporter's memory of transient failures across exports (see the module docstring).

    ``streak`` counts the failed attempts in a row; the first answer from the collector (a
    success or a permanent error) resets it. Used under the exporter's lock only.
    """

    __slots__ = ("streak",)

    def __init__(self) -> None:
        self.streak = 0

    def __repr__(self) -> str:
        return f"Outage(streak={self.streak})"


class Outcome:
    """One attempt at sending a batch, as the transport saw it.

    ``error`` is one line for diagnostics (never a header value or a credential);
    ``server_delay`` the wait the server asked for; ``retryable`` whether another attempt can
    succeed.
    """

    __slots__ = ("error", "ok", "rejected", "retryable", "server_delay")

    def __init__(
        self,
        ok: bool,
        rejected: int = 0,
        error: str | None = None,
        retryable: bool = False,
        server_delay: float | None = None,
    ) -> None:
        self.ok = ok
        self.rejected = rejected
        self.error = error
        self.retryable = retryable
        self.server_delay = server_delay

    def __repr__(self) -> str:
        return (
            f"Outcome(ok={self.ok}, rejected={self.rejected}, error={self.error!r}, "
            f"retryable={self.retryable}, server_delay={self.server_delay})"
        )


def retry_loop(
    send: Callable[[float], Outcome],
    *,
    deadline: float,
    policy: RetryPolicy,
    stop: threading.Event,
    on_transient: Callable[[Outcome], None],
    on_retry: Callable[[], None],
    outage: Outage | None = None,
) -> ExportResult:
    """Call ``send(deadline)`` until it succeeds, fails for good, or time runs out.

    ``on_transient`` hears of every transient failure (the exporter logs it, throttled);
    ``on_retry`` is called just before each new attempt (the exporter counts retried spans).
    With an ``outage`` that is ongoing (an earlier export spent its retries), this call is a
    probe: one attempt, no retry (the caller keeps the batch and spaces the probes).
    """
    probing = outage is not None and outage.streak > 0
    attempt = 0
    while True:
        if stop.is_set():
            return ExportResult(False, error="the exporter is shut down")
        if _monotonic() >= deadline:
            return ExportResult(
                False, error="the export deadline passed before it was sent", retryable=True
            )
        if attempt:
            on_retry()  # counted here, so a retry the deadline or a shutdown cancels is not
        outcome = send(deadline)
        if outcome.ok or not outcome.retryable:
            if outage is not None:
                outage.streak = 0
            if outcome.ok:
                return ExportResult(True, rejected=outcome.rejected)
            return ExportResult(False, error=outcome.error)
        on_transient(outcome)
        if stop.is_set():
            return ExportResult(False, error=f"{outcome.error} (the exporter is shut down)")
        delay = _wait_before_retry(outcome.server_delay, policy, attempt)
        attempt += 1
        if outage is not None:
            outage.streak += 1
        if probing:
            return ExportResult(
                False,
                error=f"{outcome.error} (still failing: probed again by a later export)",
                retryable=True,
            )
        if _monotonic() + delay >= deadline:
            return ExportResult(
                False,
                error=f"{outcome.error} (no time left for another attempt before the deadline)",
                retryable=True,
            )
        if stop.wait(delay):
            return ExportResult(
                False, error=f"{outcome.error} (the exporter was shut down during the backoff)"
            )


def _wait_before_retry(asked: float | None, policy: RetryPolicy, attempt: int) -> float:
    """The server's delay within the rules of the module docstring, else the backoff."""
    if asked is not None and 0.0 <= asked <= MAX_SERVER_DELAY:
        return max(asked, policy.backoff(0))
    return policy.backoff(attempt)
