"""The gRPC exporter's fork guard: ``os.fork()`` waits (bounded) for our call in flight and
cancels one that does not end, new calls wait while a fork is under way, and a child forked with
a call still in flight or just cancelled never calls gRPC (its exports fail, said once). The
real forks, with a real receiver, are in tests/reliability/test_fork_during_export.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from telemetry_run.sdk.exporters.otlp import grpc as grpc_exporter
from telemetry_run.sdk.exporters.otlp.grpc import OTLPGrpcSpanExporter, _ForkGuard
from telemetry_run.testing.otlp import free_port
from tests.unit.sdk.otlp_helpers import FAST, Logged, logged_exporters, make_spans, timed_export

BOUND = 30.0  # seconds: a bound that only catches a hang


@pytest.fixture
def logged() -> Iterator[Logged]:
    yield from logged_exporters()


class _Call:
    """A fake exporter whose call, in its own thread, ends when the channel is closed."""

    def __init__(self, guard: _ForkGuard) -> None:
        self.guard = guard
        self.cancelled = threading.Event()
        self.entered = threading.Event()
        self.thread = threading.Thread(target=self._call, daemon=True)

    def _call(self) -> None:
        self.guard.enter(self)  # type: ignore[arg-type]
        self.entered.set()
        self.cancelled.wait(BOUND)
        self.guard.leave()

    def _cancel_for_fork(self) -> None:
        self.cancelled.set()


def test_a_fork_cancels_a_call_that_does_not_end_and_goes_on_once_it_has() -> None:
    guard = _ForkGuard()
    guard.FORK_WAIT = 0.05
    call = _Call(guard)
    call.thread.start()
    assert call.entered.wait(BOUND)
    guard.before_fork()
    assert call.cancelled.is_set()
    call.thread.join(BOUND)
    assert not guard._in_flight  # the fork would find no call of ours in gRPC
    guard.after_fork_in_child()  # but gRPC may still be closing that channel in the child
    assert guard.unusable


def test_a_fork_after_a_call_that_ended_leaves_grpc_usable_in_the_child() -> None:
    guard = _ForkGuard()
    call = _Call(guard)
    call.thread.start()
    assert call.entered.wait(BOUND)
    call.cancelled.set()  # the call ends by itself (the answer came)
    call.thread.join(BOUND)
    guard.before_fork()
    guard.after_fork_in_child()
    assert not guard.unusable


def test_a_call_waits_while_a_fork_is_under_way() -> None:
    guard = _ForkGuard()
    guard.before_fork()  # nothing in flight: the fork goes on at once
    call = _Call(guard)
    call.thread.start()
    assert not call.entered.wait(0.2)  # held until the fork is done
    guard.after_fork_in_parent()
    assert call.entered.wait(BOUND)
    call.cancelled.set()
    call.thread.join(BOUND)


def test_a_child_forked_with_a_call_in_flight_never_calls_grpc(
    logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = _ForkGuard()
    guard._in_flight[1] = None  # type: ignore[assignment]  # what the child inherited
    guard.after_fork_in_child()
    assert guard.unusable and not guard._in_flight
    monkeypatch.setattr(grpc_exporter, "_fork_guard", guard)

    def no_grpc(*args: object) -> None:
        raise AssertionError("gRPC was used in a child forked during a call")

    monkeypatch.setattr(OTLPGrpcSpanExporter, "_send_with_grpc", no_grpc)
    exporter = OTLPGrpcSpanExporter(
        f"http://127.0.0.1:{free_port()}", diagnostics=logged[0], retry_policy=FAST
    )
    for _ in range(2):
        result, _ = timed_export(exporter, make_spans(2))
        assert not result.success
    (message,) = logged[1].messages  # said once
    assert "forked while a gRPC export was in flight" in message
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in message
