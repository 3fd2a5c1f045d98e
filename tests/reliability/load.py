"""The soak's load generator: ``python load.py PORT COUNT CONCURRENCY [TIMEOUT]``.

COUNT requests to ``/work/<n>`` on 127.0.0.1:PORT from CONCURRENCY threads, one connection
each; prints a JSON list of ``{"status", "took", **the response's JSON}`` (status -1 and the
error for a request that failed). Used by tests/reliability/test_soak.py and
bench/reliability_peers.py, run as a process of its own so the load does not share the app's or
the test's interpreter.
"""

import http.client
import json
import sys
import threading
import time

port, count, concurrency = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
results = []
lock = threading.Lock()
counter = iter(range(count))


def worker() -> None:
    while True:
        with lock:
            n = next(counter, None)
        if n is None:
            return
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", f"/work/{n}", headers={"Connection": "close"})
            response = conn.getresponse()
            body = response.read()
            status = response.status
            result = json.loads(body) if status == 200 else {"n": n}
        except Exception as exc:  # reported in the results, counted by the caller
            status, result = -1, {"n": n, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            conn.close()
        took = time.perf_counter() - started
        with lock:
            results.append({"status": status, "took": took, **result})


threads = [threading.Thread(target=worker) for _ in range(concurrency)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
json.dump(results, sys.stdout)
