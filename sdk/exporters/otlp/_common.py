"""What the gRPC and HTTP OTLP exporters share: options, the export loop, diagnostics, fork.

An export runs with the suppression flag set (the exporter's own HTTP or gRPC traffic must never
be traced, whoever calls it), is bounded by the earlier of the caller's deadline and the
exporter's own timeout, and retries transient failures inside that bound (``_retry``).

Diagnostics name the endpoint as ``scheme://host:port/path``: user info and query strings are
left out (they may carry credentials), header values and key paths never appear.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from telemetry_run.sdk import forking
from telemetry_run.sdk.context import SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from telemetry_run.sdk.diagnostics import Diagnostics, get_diagnostics
from telemetry_run.sdk.exporters import SUCCESS, ExportResult
from telemetry_run.sdk.exporters.otlp._retry import Outage, Outcome, RetryPolicy, retry_loop

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = [
    "ENCRYPTED_KEY_MESSAGE",
    "LOGS_SIGNAL",
    "METRICS_SIGNAL",
    "TRACE_SIGNAL",
    "Headers",
    "OTLPExporterBase",
    "Signal",
    "pem_is_encrypted",
    "safe_endpoint",
    "time_left",
    "wrong_protocol_message",
]

_monotonic = time.monotonic

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

_ERROR_LIMIT: Final = 300


def user_agent() -> str:
    from telemetry_run.sdk._version import __version__

    return f"telemetry-run/{__version__}"


# What a plain ``scheme://host:port/path`` is made of: no user info, query, fragment, escapes,
# brackets, spaces or control characters.
_PLAIN_URL: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/"
)


def safe_endpoint(endpoint: str) -> str:
    """``endpoint`` without user info and query: what diagnostics may show."""
    if "://" not in endpoint:
        return endpoint.rpartition("@")[2]
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("http", "https") and rest[:1] not in ("", "/") and set(rest) <= _PLAIN_URL:
        return endpoint  # a host, maybe a path: urlsplit and urlunsplit give it back unchanged
    import urllib.parse  # not for the common case: this module loads at every start-up

    parts = urllib.parse.urlsplit(endpoint)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def pem_is_encrypted(pem: bytes) -> bool:
    """Whether a PEM private key is encrypted (PKCS#8 ``ENCRYPTED PRIVATE KEY`` or the
    traditional ``Proc-Type: 4,ENCRYPTED`` header): loading one makes OpenSSL ask for the
    passphrase on the terminal, so the exporters refuse it instead."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem or (
        b"Proc-Type:" in pem and b"ENCRYPTED" in pem
    )


ENCRYPTED_KEY_MESSAGE: Final = (
    "the client key is passphrase-protected (encrypted), which the exporter cannot use: store "
    "it decrypted (openssl pkey -in key.pem -out plain-key.pem)"
)


def one_line(text: str, limit: int = _ERROR_LIMIT) -> str:
    """A server's message as one bounded line for a log."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def wrong_protocol_message(endpoint: str, *, spoken: str, expected: str) -> str:
    """The one diagnostic for an exporter pointed at the other transport's port."""
    if expected == "grpc":
        fix = (
            "point the exporter at the receiver's OTLP/gRPC port (usually 4317), or, to keep "
            "this port, set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
        )
    else:
        fix = (
            "point the exporter at the receiver's OTLP/HTTP port (usually 4318, path "
            "/v1/traces), or, to keep this port, set OTEL_EXPORTER_OTLP_PROTOCOL=grpc"
        )
    wanted = "OTLP/gRPC (HTTP/2)" if expected == "grpc" else "OTLP/HTTP (HTTP/1.1)"
    return (
        f"OTLP export to {endpoint} failed: the endpoint speaks {spoken}, not {wanted}; "
        f"4317 is the OTLP/gRPC port and 4318 the OTLP/HTTP port: {fix}"
    )


_TOKEN: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_BAD_VALUE: Final = r"[\x00-\x08\x0a-\x1f\x7f]"
#: Set by the exporter itself: a user's copy would be sent twice or contradict the body.
_RESERVED: Final = frozenset({"content-type", "content-encoding", "content-length", "te"})


def normalize_headers(
    headers: Headers | None, reject: Callable[[str, str], None]
) -> tuple[tuple[str, str], ...]:
    """The headers as (name, value) pairs; ``reject(name, why)`` hears of each one dropped
    (an invalid name, a value with control characters, one the exporter sets itself)."""
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    kept = []
    for key, value in items:
        name, text = str(key).strip(), str(value)
        if not re.fullmatch(_TOKEN, name):
            reject(name, "is not a valid header name")
        elif re.search(_BAD_VALUE, text):
            reject(name, "has a value with control characters")
        elif name.lower() in _RESERVED or name.lower().startswith("grpc-"):
            reject(name, "is set by the exporter itself")
        else:
            kept.append((name, text))
    return tuple(kept)


class Signal(NamedTuple):
    """What differs between the OTLP signals on the wire, everything else (transport, retry,
    TLS, compression, headers, deadlines, fork handling) being shared: opentelemetry-proto's
    ``collector/<package>/v1`` service and its answer, the partial success field counting what
    the receiver refused (protobuf and OTLP/JSON spelling) and what that field counts."""

    package: str
    service: str
    response: str
    rejected: str
    rejected_json: str
    item: str

    def module(self) -> Any:
        """opentelemetry-proto's ``collector/<package>/v1/<package>_service_pb2`` module."""
        import importlib

        return importlib.import_module(
            f"opentelemetry.proto.collector.{self.package}.v1.{self.package}_service_pb2"
        )

    def partial_success(self, data: bytes) -> tuple[int, str]:
        """(rejected items, message) of a protobuf answer's body; raises when it is not one."""
        partial = getattr(self.module(), self.response).FromString(data).partial_success
        return int(getattr(partial, self.rejected)), str(partial.error_message)


TRACE_SIGNAL: Final = Signal(
    "trace", "TraceService", "ExportTraceServiceResponse", "rejected_spans", "rejectedSpans", "span"
)
LOGS_SIGNAL: Final = Signal(
    "logs",
    "LogsService",
    "ExportLogsServiceResponse",
    "rejected_log_records",
    "rejectedLogRecords",
    "log record",
)
METRICS_SIGNAL: Final = Signal(
    "metrics",
    "MetricsService",
    "ExportMetricsServiceResponse",
    "rejected_data_points",
    "rejectedDataPoints",
    "data point",
)


class OTLPExporterBase:
    """The transport-independent half of an OTLP span exporter.

    Subclasses implement ``_encode`` (spans to the request body), ``_send`` (one attempt,
    returning an ``Outcome``), ``_close_transport`` and ``_forget_transport`` (drop the parent's
    connection in a forked child without touching it).
    """

    _protocol_name = "otlp"
    #: The signal this exporter sends: its service, answer and partial success field.
    _signal: Signal = TRACE_SIGNAL

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Headers | None,
        timeout: float,
        compression: str | None,
        certificate_file: str | None,
        client_key_file: str | None,
        client_certificate_file: str | None,
        retry_policy: RetryPolicy | None,
        diagnostics: Diagnostics | None,
    ) -> None:
        if timeout < 0 or math.isnan(timeout):
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout}")
        compression = (compression or "none").strip().lower()
        if compression not in ("gzip", "none"):
            raise ValueError(f"compression must be 'gzip' or 'none', got {compression!r}")
        if (client_key_file is None) != (client_certificate_file is None):
            raise ValueError("mTLS needs both client_key_file and client_certificate_file")
        self._endpoint = endpoint
        self._shown_endpoint = safe_endpoint(endpoint)
        self._diagnostics = diagnostics or get_diagnostics()
        self._headers = normalize_headers(headers, self._reject_header)
        self._timeout = timeout if timeout > 0 else math.inf
        self._gzip = compression == "gzip"
        self._certificate_file = certificate_file
        self._client_key_file = client_key_file
        self._client_certificate_file = client_certificate_file
        self._policy = retry_policy or RetryPolicy()
        self._outage = Outage()  # failures across exports: probe, not retry, while it lasts
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one export on the transport at a time
        self._pid = os.getpid()
        _instances.add(self)

    # -- the exporter protocol --------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The endpoint as diagnostics show it (no user info, no query)."""
        return self._shown_endpoint

    def export(self, spans: Sequence[ReadableSpan], *, deadline: float) -> ExportResult:
        if self._stop.is_set():
            return ExportResult(False, error="the exporter is shut down")
        if not spans:
            return SUCCESS
        count = len(spans)
        return self._export_encoded(
            lambda: self._encode(spans),
            deadline,
            on_retry=lambda: self._diagnostics.spans_retried.add(count),
        )

    def _export_encoded(
        self, encode: Callable[[], bytes], deadline: float, *, on_retry: Callable[[], None]
    ) -> ExportResult:
        """Send what ``encode`` makes, retried within ``deadline`` (``on_retry`` counts each
        retry): the transport, retry and accounting every signal shares."""
        if self._stop.is_set():
            return ExportResult(False, error="the exporter is shut down")
        if self._pid != os.getpid():  # forked by something that skipped the fork hooks
            self._after_fork_in_child()
        deadline = min(deadline, _monotonic() + self._timeout)
        if _monotonic() >= deadline:
            return ExportResult(False, error="the export deadline passed before it was sent")
        token = attach(set_value(SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            if not self._lock.acquire(timeout=_wait_time(deadline)):
                return ExportResult(
                    False, error="another export held the exporter until the deadline"
                )
            try:
                body = encode()
                return retry_loop(
                    lambda until: self._attempt(body, until),
                    deadline=deadline,
                    policy=self._policy,
                    stop=self._stop,
                    on_transient=self._report_transient,
                    on_retry=on_retry,
                    outage=self._outage,
                )
            finally:
                if self._stop.is_set():  # shut down meanwhile: the transport goes too
                    self._close_transport(in_use=False)
                self._lock.release()
        finally:
            detach(token)

    def force_flush(self, *, deadline: float) -> bool:
        """Nothing is buffered inside the exporter."""
        return True

    def shutdown(self, *, deadline: float) -> None:
        """Close the connection and end a retry backoff at once; later exports fail fast.

        An export in flight on another thread is interrupted (its call is cancelled or its
        socket shut), so it returns promptly too.
        """
        if self._stop.is_set():
            return
        self._stop.set()
        if self._pid != os.getpid():
            self._forget_transport()  # the parent's, inherited: never touched in a child
            return
        self._close_transport(in_use=not self._try_lock())

    def _attempt(self, body: bytes, deadline: float) -> Outcome:
        """``_send``, whose every failure is an ``Outcome``: nothing a collector answers may
        escape ``export()``. An exception here is a case ``_send`` did not foresee; the batch
        is not sent again (the receiver may have taken it)."""
        try:
            return self._send(body, deadline)
        except Exception as exc:  # noqa: BLE001  # whatever the answer was, export() returns
            error = describe_exception(exc)
            self._report_permanent(
                "unexpected",
                "OTLP export to %s failed on the receiver's answer (%s); the batch is not sent "
                "again",
                self._shown_endpoint,
                error,
            )
            return Outcome(False, error=f"{error} from {self._shown_endpoint}, not retried")

    def _try_lock(self) -> bool:
        if self._lock.acquire(blocking=False):
            self._lock.release()
            return True
        return False

    # -- for subclasses ---------------------------------------------------------------------

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        raise NotImplementedError

    def _send(self, body: bytes, deadline: float) -> Outcome:
        raise NotImplementedError

    def _close_transport(self, *, in_use: bool) -> None:
        raise NotImplementedError

    def _forget_transport(self) -> None:
        raise NotImplementedError

    def _reject_header(self, name: str, why: str) -> None:
        # The name only: a header's value may be a credential. An invalid name is masked too:
        # it is often a value written where the name goes ("Authorization: Bearer ...").
        if not re.fullmatch(_TOKEN, name):
            from telemetry_run.sdk._printable import mask

            name = mask(name)
        self._diagnostics.warn(
            f"otlp-header:{self._shown_endpoint}:{name}",
            "OTLP exporter for %s: header %r %s; it is not sent",
            self._shown_endpoint,
            name,
            why,
        )

    def _report_transient(self, outcome: Outcome) -> None:
        # One line per endpoint per interval, however many batches and retries fail meanwhile
        # (a collector that is down must not flood the app's stderr: REFERENCE 5.21).
        self._diagnostics.warn(
            f"otlp-transient:{self._shown_endpoint}",
            "OTLP export to %s failed: %s; it is retried with backoff while the export "
            "deadline allows",
            self._shown_endpoint,
            outcome.error,
        )

    def _report_permanent(self, key: str, message: str, *args: object) -> None:
        """One diagnostic per endpoint and cause per interval, for failures not retried."""
        self._diagnostics.warn(f"otlp-failed:{self._shown_endpoint}:{key}", message, *args)

    def _report_partial_success(self, rejected: int, message: str) -> None:
        if rejected or message:
            self._diagnostics.warn(
                f"otlp-partial:{self._shown_endpoint}",
                "OTLP receiver at %s accepted the batch partially: %d %s(s) rejected%s",
                self._shown_endpoint,
                rejected,
                self._signal.item,
                f" ({one_line(message)})" if message else "",
            )

    def _after_fork_in_child(self) -> None:
        """Fresh lock and event; the parent's connection is forgotten, never used or closed."""
        self._lock = threading.Lock()
        stopped = self._stop.is_set()
        self._stop = threading.Event()
        if stopped:
            self._stop.set()
        self._forget_transport()
        self._pid = os.getpid()


#: Longer than any export needs; what "no limit" becomes where an API wants a number.
_FOREVER: Final = 365 * 24 * 3600.0


def time_left(deadline: float) -> float | None:
    """Seconds to ``deadline`` for a socket or RPC timeout; None (no timeout) when unbounded."""
    left = deadline - _monotonic()
    return None if left > _FOREVER else left


def _wait_time(deadline: float) -> float:
    left = deadline - _monotonic()
    if left <= 0:
        return 0.0
    return min(left, threading.TIMEOUT_MAX)


# A child of os.fork must not inherit a lock held by the parent's export worker, nor use the
# parent's connection or channel (its socket is shared with the parent's; a gRPC channel's
# threads do not exist in the child).
_instances: weakref.WeakSet[OTLPExporterBase] = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for exporter in list(_instances):
        exporter._after_fork_in_child()


forking.register(_reinit_after_fork)


def describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(str(exc))}" if str(exc) else type(exc).__name__


def call_quietly(fn: Callable[[], object]) -> None:
    """Run a clean-up call whose failure changes nothing (closing a dead socket)."""
    with contextlib.suppress(Exception):
        fn()
