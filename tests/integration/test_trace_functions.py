"""TELEMETRY_RUN_TRACE_FUNCTIONS: spans around named functions of a module imported later (#16)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from telemetry_run.testing.otlp import OTLPReceiver
from tests.integration.conftest import LAUNCHER, PYTHON, clean_env

SHOP = """
import asyncio


def checkout(cart):
    return sum(cart)


def refuse(cart):
    raise ValueError("empty cart")


class Cart:
    def total(self, prices):
        return checkout(prices)

    @staticmethod
    def currency():
        return "EUR"


def lines(cart):
    for item in cart:
        yield f"line {item}"
    return "done"


async def pay(amount):
    await asyncio.sleep(0)
    return amount


async def receipts(cart):
    for item in cart:
        await asyncio.sleep(0)
        yield item
"""

APP = """
import asyncio, sys
from telemetry_run import trace

tracer = trace.get_tracer("app")
assert "shop" not in sys.modules  # imported after start-up, by the app
import shop

async def main():
    paid = await shop.pay(3)
    got = [item async for item in shop.receipts([1, 2])]
    return paid, got

with tracer.start_as_current_span("request"):
    print(shop.checkout([1, 2]), shop.Cart().total([3]), shop.Cart.currency())
    try:
        shop.refuse([])
    except ValueError as exc:
        print("app saw", exc)
    print(list(shop.lines([1, 2])))
    early = shop.lines([1, 2, 3])
    print(next(early))
    early.close()  # the consumer stops early: the span ends here
    shop.lines([9])  # never iterated: no span
    print(asyncio.run(main()))
"""

ENTRIES = (
    "shop:checkout, shop:refuse, shop:Cart.total, shop:Cart.currency, shop:lines, shop:pay,"
    "shop:receipts, shop:missing, shop:Cart.nope, not-a-name, shop:asyncio"
)


def test_named_functions_of_a_module_imported_later_get_internal_spans(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    (tmp_path / "shop.py").write_text(SHOP)
    (tmp_path / "app.py").write_text(APP)
    result = subprocess.run(
        [*LAUNCHER, PYTHON, str(tmp_path / "app.py")],
        env=clean_env(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_base,
            TELEMETRY_RUN_TRACE_FUNCTIONS=ENTRIES,
            PYTHONPATH=str(tmp_path),
        ),
        capture_output=True,
        text=True,
        timeout=60,  # only catches a hang
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # The application's behaviour is its own: results, exceptions, generator values.
    assert result.stdout.splitlines() == [
        "3 3 EUR",
        "app saw empty cart",
        "['line 1', 'line 2']",
        "line 1",
        "(3, [1, 2])",
    ]
    prefix = "telemetry-run: TELEMETRY_RUN_TRACE_FUNCTIONS: "
    assert sorted(result.stderr.splitlines()) == sorted(
        [
            f"{prefix}'not-a-name' is not module:function or module:Class.method; it is not traced",
            f"{prefix}'shop:missing' does not resolve: shop has no missing; it is not traced",
            f"{prefix}'shop:Cart.nope' does not resolve: shop has no Cart.nope; it is not traced",
            f"{prefix}'shop:asyncio' is a module, not a function; it is not traced",
        ]
    )
    spans = otlp_receiver.wait_for_spans(10)
    request = next(span for span in spans if span.name == "request")
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert {name: len(found) for name, found in by_name.items()} == {
        "request": 1,
        "checkout": 2,  # called directly, and by Cart.total
        "refuse": 1,
        "Cart.total": 1,
        "Cart.currency": 1,
        "lines": 2,  # iterated to the end, and closed early; the one never iterated: none
        "pay": 1,
        "receipts": 1,
    }
    (total,) = by_name["Cart.total"]
    parents = sorted(
        ("total" if span.parent_span_id == total.span_id else "request", span.name)
        for span in spans
        if span.name != "request" and span.parent_span_id in (request.span_id, total.span_id)
    )
    assert parents == [
        *[("request", name) for name in ("Cart.currency", "Cart.total", "checkout")],
        *[("request", name) for name in ("lines", "lines", "pay", "receipts", "refuse")],
        ("total", "checkout"),
    ]
    assert {span.kind for span in spans if span.name != "request"} == {1}  # INTERNAL
    assert {span.trace_id for span in spans} == {request.trace_id}
    (refuse,) = by_name["refuse"]
    assert refuse.status.code == 2  # STATUS_CODE_ERROR
    assert [event.name for event in refuse.events] == ["exception"]
    names = {
        attribute.value.string_value
        for span in spans
        for attribute in span.attributes
        if attribute.key == "code.function.name"
    }
    assert names == {
        "shop.checkout",
        "shop.refuse",
        "shop.Cart.total",
        "shop.Cart.currency",
        "shop.lines",
        "shop.pay",
        "shop.receipts",
    }
