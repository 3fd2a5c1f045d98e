"""Demo: a Flask shop traced with no telemetry code, under ``telemetry-run``.

The README's first command runs it with the console exporter. It serves the app on a free
loopback port (werkzeug, in a thread), calls it with ``requests`` as a client would, and stops.
The output shows, per request, the CLIENT span of the call, the SERVER span Flask's
instrumentor made (named from the route), and the manual span inside the view: one trace.
"""

from __future__ import annotations

import logging
import threading

import flask
import requests
from werkzeug.serving import make_server

from telemetry_run import trace

app = flask.Flask(__name__)
tracer = trace.get_tracer("examples.flask_demo", "1.0")


@app.route("/users/<int:user_id>")
def user(user_id: int) -> dict[str, object]:
    with tracer.start_as_current_span("load_user") as span:
        span.set_attribute("user.id", user_id)
        return {"id": user_id, "name": f"user-{user_id}"}


@app.route("/checkout", methods=["POST"])
def checkout() -> tuple[str, int]:
    raise RuntimeError("payment service unavailable")  # recorded on the span; Flask's 500


def main() -> None:
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with tracer.start_as_current_span("demo client"):
            print("GET /users/42 ->", requests.get(f"{base}/users/42", timeout=10).json())
            print("POST /checkout ->", requests.post(f"{base}/checkout", timeout=10).status_code)
    finally:
        server.shutdown()
        thread.join(5)


if __name__ == "__main__":
    app.logger.disabled = True  # the 500's traceback is on the span; keep the demo's output short
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log lines
    main()
