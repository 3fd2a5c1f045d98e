"""Demo: nested spans made through telemetry_run.trace, printed by the console exporter.

Run it with the README's first command. Each line is one finished span; children print before
their parent because a span is exported when it ends.
"""

from __future__ import annotations

import time

from telemetry_run import trace
from telemetry_run.sdk import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    Resource,
    TracerProvider,
)

provider = TracerProvider(resource=Resource.create({"service.name": "demo-checkout"}))
provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)

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
    provider.shutdown()  # flushes the batch processor; a dead exporter could not hold us past 30 s
