"""`python -m tests.load.probe URL INTERVAL_S`: GET URL every INTERVAL_S until a line arrives on
stdin, then print the response times (ms) as one JSON list."""

from __future__ import annotations

import json
import sys
import threading
import time

import httpx


def main() -> None:
    url, interval = sys.argv[1], float(sys.argv[2])
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    latencies: list[float] = []
    with httpx.Client(timeout=10) as client:
        next_at = time.monotonic()
        while not stop.is_set():
            started = time.monotonic()
            try:
                client.get(url)
                latencies.append((time.monotonic() - started) * 1000)
            except httpx.HTTPError:
                latencies.append(10_000.0)
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))
    print(json.dumps([round(x, 2) for x in latencies]))


if __name__ == "__main__":
    main()
