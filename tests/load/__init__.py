"""Helpers for the load, cap and malformed-input tests: raw Realtime sessions over `websockets`,
server RSS from /proc, an event-loop-lag probe in its own process, and percentiles."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import websockets

SAMPLE_RATE = 24_000


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Session:
    """One raw Realtime connection that records every server event it reads."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self.closed: BaseException | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> Session:
        ws = await websockets.connect(url, max_size=None, open_timeout=10, **kwargs)
        session = cls(ws)
        await session.wait_for("session.created")
        return session

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.events.append(json.loads(message))
                self._changed.set()
        except websockets.ConnectionClosed as exc:
            self.closed = exc
        finally:
            if self.closed is None:
                self.closed = ConnectionError("closed")
            self._changed.set()

    def of(self, kind: str, after: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.events[after:] if e.get("type") == kind]

    def mark(self) -> int:
        return len(self.events)

    async def wait_for(self, kind: str, *, after: int = 0, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.of(kind, after)
            if found:
                return found[0]
            if self.closed is not None:
                raise ConnectionError(f"closed before {kind}: {self.closed!r}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds = [e.get("type") for e in self.events[after:]][-30:]
                raise TimeoutError(f"no {kind} within {timeout} s; saw {kinds}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def send(self, event: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(json.dumps(event) if isinstance(event, dict) else event)

    async def append(self, pcm: bytes) -> None:
        await self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})

    async def text_turn(self, text: str, *, timeout: float = 20.0) -> float:
        """A typed user item and response.create; seconds until response.done (status completed)."""
        mark = self.mark()
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await self.send({"type": "conversation.item.create", "item": item})
        started = time.monotonic()
        await self.send({"type": "response.create"})
        done = await self.wait_for("response.done", after=mark, timeout=timeout)
        assert done["response"]["status"] == "completed", done
        return time.monotonic() - started

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class LagProbe:
    """GET /health every ``interval_s`` from a separate process (so the test's own busy event loop
    does not count); the spread of the response times is the server's event-loop lag."""

    def __init__(self, base_url: str, interval_s: float = 0.05) -> None:
        self.base_url = base_url
        self.interval_s = interval_s
        self.process: subprocess.Popen[str] | None = None
        self.latencies_ms: list[float] = []

    def __enter__(self) -> LagProbe:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.load.probe", self.base_url + "/health", str(self.interval_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        out, _ = self.process.communicate("stop\n", timeout=30)
        self.latencies_ms = json.loads(out.strip().splitlines()[-1])

    def summary(self) -> dict[str, float]:
        values = self.latencies_ms
        p50 = percentile(values, 50)
        return {
            "probes": len(values),
            "p50_ms": p50,
            "p99_ms": percentile(values, 99),
            "max_ms": max(values) if values else math.nan,
            "lag_p99_ms": percentile(values, 99) - p50,
        }
