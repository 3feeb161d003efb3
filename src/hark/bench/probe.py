"""What stalls a benchmarked server: garbage-collector pauses and event-loop lag, recorded from
inside the ``hark serve`` process so the bench can say what a latency spike was.

Run as ``python -m hark.bench.probe PATH serve ...``: it installs the probe, then runs
``hark serve`` as usual. It writes JSON lines to PATH every half second:

- ``["gc", start, ms, generation]``: one collection, its start on the monotonic clock (the same
  clock as the bench client's, on one machine) and how long it held the interpreter;
- ``["lag", at, ms]``: every 10 ms a thread asks the event loop to run a callback
  (``call_soon_threadsafe``); the delay until it runs is the loop's lag at ``at`` (a callback or
  a GC pause holding the loop, or the loop waking late from its selector).

Bench-only: nothing in hark imports it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LAG_INTERVAL_S = 0.01
FLUSH_S = 0.5


class Probe:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._events: list[list[Any]] = []
        self._lock = threading.Lock()
        self._gc_started = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)
        threading.Thread(target=self._run, name="hark-bench-probe", daemon=True).start()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._gc_started = now
            if self._loop is None:
                # The server's loop is made by uvicorn (uvloop or asyncio): a collection in the
                # loop's thread finds it. (Not gc.get_objects() from the probe's thread: that
                # exposes tuples still being built, and CPython then fails to resize them.)
                self._loop = asyncio._get_running_loop()
        else:
            took = round((now - self._gc_started) * 1000.0, 3)
            self._add(["gc", round(self._gc_started, 6), took, info["generation"]])

    def _add(self, event: list[Any]) -> None:
        with self._lock:
            self._events.append(event)

    def _ran(self, asked: float) -> None:
        self._add(["lag", round(asked, 6), round((time.monotonic() - asked) * 1000.0, 3)])

    def _run(self) -> None:
        flushed = time.monotonic()
        with self.path.open("a", encoding="utf-8") as out:
            while True:
                time.sleep(LAG_INTERVAL_S)
                if self._loop is not None and self._loop.is_closed():
                    self._loop = None
                if self._loop is not None:
                    try:
                        self._loop.call_soon_threadsafe(self._ran, time.monotonic())
                    except RuntimeError:  # closed: the server is stopping
                        self._loop = None
                if time.monotonic() - flushed >= FLUSH_S:
                    with self._lock:
                        events, self._events = self._events, []
                    out.writelines(json.dumps(e) + "\n" for e in events)
                    out.flush()
                    flushed = time.monotonic()


def read(path: Path) -> Iterator[list[Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue  # a line cut by a write in progress


def main() -> int:
    path, argv = Path(sys.argv[1]), sys.argv[2:]
    Probe(path).install()
    from hark.cli import main as hark_main

    return hark_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
