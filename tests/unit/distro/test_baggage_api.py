"""telemetry_run.baggage: the public baggage calls, and the W3C limits they keep (#16)."""

from __future__ import annotations

import logging

import pytest

from telemetry_run import baggage, context
from telemetry_run.propagate import inject
from telemetry_run.sdk import diagnostics
from telemetry_run.sdk.context import Context
from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The warnings the calls log, each once per interval as the SDK's diagnostics do."""
    logged: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append(record.getMessage())

    log = logging.Logger("tests.baggage")
    log.addHandler(Collect())
    collecting = diagnostics.Diagnostics(log=log)
    monkeypatch.setattr(diagnostics, "get_diagnostics", lambda: collecting)
    return logged


def _header(ctx: Context) -> str | None:
    carrier: dict[str, str] = {}
    W3CBaggagePropagator().inject(carrier, ctx)
    return carrier.get("baggage")


def test_set_get_remove_clear_and_what_goes_out() -> None:
    ctx = baggage.set("tenant", "acme corp", Context())
    ctx = baggage.set("user.id", "42", ctx)
    assert baggage.get("tenant", ctx) == "acme corp"
    assert dict(baggage.get_all(ctx)) == {"tenant": "acme corp", "user.id": "42"}
    assert _header(ctx) == "tenant=acme%20corp,user.id=42"
    assert dict(baggage.get_all(baggage.remove("tenant", ctx))) == {"user.id": "42"}
    assert baggage.get_all(baggage.clear(ctx)) == {}
    assert baggage.get("tenant") is None  # nothing attached: the current context is untouched


def test_attached_baggage_is_what_the_propagators_inject() -> None:
    token = context.attach(baggage.set("tenant", "acme"))
    try:
        carrier: dict[str, str] = {}
        inject(carrier)
        assert baggage.get("tenant") == "acme"
    finally:
        context.detach(token)
    assert baggage.get("tenant") is None
    assert carrier.get("baggage") == "tenant=acme"


def test_an_entry_the_header_could_not_carry_is_refused_with_one_warning(
    warnings: list[str],
) -> None:
    start = Context()
    for name, value in [("bad key", "v"), ("k", 42), ("k", "\ud800"), ("k", "x" * 4095)]:
        assert baggage.set(name, value, start) is start  # type: ignore[arg-type]
    assert warnings == [
        "telemetry_run.baggage.set('bad key', ...) refused: the key is not an RFC 7230 token; "
        "the baggage is unchanged"
    ]  # the others are counted, then told with the next warning after the interval


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ({f"k{i}": "v" for i in range(180)}, "the baggage holds 180 entries already"),
        (
            {f"k{i}": "v" * 4000 for i in range(2)},
            "the baggage would be 12014 bytes encoded, over 8192",
        ),
    ],
)
def test_the_count_and_header_size_limits_hold(
    warnings: list[str], entries: dict[str, str], problem: str
) -> None:
    ctx = Context()
    for name, value in entries.items():
        ctx = baggage.set(name, value, ctx)
    assert dict(baggage.get_all(ctx)) == entries
    assert baggage.set("extra", "v" * 4000, ctx) is ctx
    assert len(warnings) == 1 and problem in warnings[0], warnings
    # Replacing an entry is not adding one: the limits count it once.
    assert baggage.get("k0", baggage.set("k0", "w", ctx)) == "w"


def test_a_member_over_4096_bytes_is_refused(warnings: list[str]) -> None:
    assert baggage.get("k", baggage.set("k", "x" * 4094, Context())) == "x" * 4094
    assert baggage.get("k", baggage.set("k", "x" * 4095, Context())) is None
    assert warnings == [
        "telemetry_run.baggage.set('k', ...) refused: the entry is 4097 bytes encoded, over "
        "4096; the baggage is unchanged"
    ]
