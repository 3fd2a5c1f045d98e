"""Demo: a checkout request made of nested spans, with no telemetry set-up in the code.

Run it under the launcher with ``OTEL_TRACES_EXPORTER=console``; the launcher builds the SDK from
the OTEL_* variables and the console exporter draws the trace as a waterfall when its root ends
(``TELEMETRY_RUN_CONSOLE_FORMAT=spans``: one line per finished span, children before their
parent, because a span is exported when it ends).
"""

from __future__ import annotations

import time

from telemetry_run import trace

tracer = trace.get_tracer("examples.nested_spans", "1.0")


@tracer.start_as_current_span("load_cart")
def load_cart(user_id: int) -> list[str]:
    trace.get_current_span().set_attribute("user.id", user_id)
    time.sleep(0.002)
    return ["book", "lamp"]


def checkout(user_id: int) -> None:
    with tracer.start_as_current_span("POST /checkout", kind=trace.SpanKind.SERVER) as request:
        request.set_attribute("http.request.method", "POST")
        items = load_cart(user_id)
        for item in items:
            with tracer.start_as_current_span("reserve", attributes={"item": item}):
                time.sleep(0.001)
        try:
            with tracer.start_as_current_span("charge_card"):
                raise TimeoutError("payment gateway timed out")
        except TimeoutError:
            request.set_status(trace.Status(trace.StatusCode.ERROR, "payment failed"))
        request.set_attribute("http.response.status_code", 502)


if __name__ == "__main__":
    checkout(user_id=42)
