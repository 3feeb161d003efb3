"""A bench client: WebSocket sessions that stream audio like microphones and timestamp every
frame they send and every message they receive.

Audio goes out in 20 ms frames at real-time pace from the moment a session starts: queued
speech when there is some, silence otherwise (a microphone never stops). One ``Pacer`` task per
event loop sends the next frame of every session each 20 ms tick, so a client with a hundred
sessions has one timer, not a hundred. ``sent_at[i]`` is when frame ``i`` of a session left.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hark.bench.audio import FRAME_BYTES, FRAME_MS, RATE

SILENT_FRAME = bytes(FRAME_BYTES)
_resampled: list[int] = []


def resampled_samples(frame: int) -> int:
    """16 kHz samples hark's input resampler (24 → 16 kHz, causal FIR) has put out after input frame
    ``frame`` (0-based) of a session. The count depends only on how much audio went in, not on
    what it was, so one table serves every session."""
    if frame >= len(_resampled):
        from hark.audio import pcm16_to_float
        from hark.audio.polyphase import CausalResampler

        resampler = CausalResampler(RATE, 16_000)
        total, out = 0, []
        silent = pcm16_to_float(SILENT_FRAME)
        for _ in range(max(frame + 1, 2 * len(_resampled), 3000)):
            total += len(resampler.process(silent))
            out.append(total)
        _resampled[:] = out
    return _resampled[frame]


@dataclass(slots=True)
class Received:
    at: float
    type: str
    data: dict[str, Any]


def realtime_append(pcm: bytes) -> str:
    """One ``input_audio_buffer.append`` event (hark's wire format: base64 PCM in JSON)."""
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


def b64_pcm_bytes(delta: str) -> int:
    """Decoded size of a base64 string, without decoding it."""
    return len(delta) * 3 // 4 - delta[-2:].count("=") if delta else 0


class Pacer:
    """Sends one frame of every registered session each ``FRAME_MS``."""

    def __init__(self) -> None:
        self.sessions: list[Session] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, session: Session) -> None:
        self.sessions.append(session)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    def remove(self, session: Session) -> None:
        with contextlib.suppress(ValueError):
            self.sessions.remove(session)

    async def _run(self) -> None:
        period = FRAME_MS / 1000.0
        started = time.monotonic()
        tick = 0
        while self.sessions:
            target = started + tick * period
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for session in list(self.sessions):
                await session.send_next(target)
            tick += 1


_pacers: dict[asyncio.AbstractEventLoop, Pacer] = {}


def pacer() -> Pacer:
    loop = asyncio.get_running_loop()
    if loop not in _pacers:
        _pacers.clear()  # one event loop at a time (each scenario runs its own)
        _pacers[loop] = Pacer()
    return _pacers[loop]


HARK_WIRES = ("realtime", "binary")
"""The wires that speak hark's Realtime protocol (its events, ``response.created`` and the rest)."""


@dataclass
class Session:
    """One streaming session. ``wire``: "realtime" (hark's JSON events, audio as base64 both
    ways), "binary" (hark's events, audio as raw PCM binary frames both ways: connect with
    ``audio=binary``) or "raw" (Pipecat: binary PCM both ways, JSON text for markers). Binary
    reply audio on the "binary" wire is attributed to the response in progress."""

    url: str
    wire: str = "realtime"
    compression: str | None = "deflate"
    sent_at: list[float] = field(default_factory=list)
    events: list[Received] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)
    audio_bytes_received: int = 0
    error: str | None = None
    _queue: collections.deque[str | bytes] = field(default_factory=collections.deque)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _receiver: asyncio.Task[None] | None = None
    _ws: Any = None
    _closed: bool = False
    _assigned: int = 0
    """Frames taken for sending so far (the index the next one gets)."""
    _silence: str | bytes = b""
    _response_id: str | None = None
    """The last ``response.created`` (binary reply audio belongs to it)."""

    def encode(self, pcm: bytes) -> str | bytes:
        return realtime_append(pcm) if self.wire == "realtime" else pcm

    async def start(self, *, ready_event: str | None = "session.created", limit_s: float = 20.0) -> None:
        from websockets.asyncio.client import connect

        self._silence = self.encode(SILENT_FRAME)
        self._ws = await connect(
            self.url, max_size=None, compression=self.compression, open_timeout=limit_s, ping_interval=None
        )
        self._receiver = asyncio.create_task(self._receive())
        if ready_event is not None:
            await self.wait_for(ready_event, limit_s=limit_s)
        pacer().add(self)

    def enqueue(self, messages: list[str | bytes]) -> tuple[int, int]:
        """Queue encoded frames; returns the indexes the first and last will be sent with."""
        first = self._assigned + len(self._queue)
        self._queue.extend(messages)
        return first, first + len(messages) - 1

    async def send_next(self, target: float) -> None:
        if self._closed or self.error is not None:
            pacer().remove(self)
            return
        message = self._queue.popleft() if self._queue else self._silence
        self._assigned += 1
        now = time.monotonic()
        try:
            await self._ws.send(message)
        except Exception as exc:  # the connection went away: the scenario reports it
            if not self._closed:
                self.error = f"send: {type(exc).__name__}: {exc}"
                self._changed.set()
            pacer().remove(self)
            return
        self.sent_at.append(now)
        self.lateness_ms.append(max(0.0, (now - target) * 1000.0))

    async def _receive(self) -> None:
        try:
            async for message in self._ws:
                now = time.monotonic()
                if isinstance(message, bytes):
                    self.audio_bytes_received += len(message)
                    audio = {"response_id": self._response_id, "bytes": len(message)}
                    self.events.append(Received(now, "audio", audio))
                else:
                    data = json.loads(message)
                    kind = data.get("type", "")
                    if kind == "response.created":
                        self._response_id = data["response"]["id"]
                    elif kind == "response.output_audio.delta":
                        n = b64_pcm_bytes(data.get("delta", ""))
                        self.audio_bytes_received += n
                        data = {"response_id": data.get("response_id"), "bytes": n}
                        kind = "audio"
                    self.events.append(Received(now, kind, data))
                self._changed.set()
        except Exception as exc:
            if not self._closed:
                self.error = f"receive: {type(exc).__name__}: {exc}"
        finally:
            if not self._closed and self.error is None:
                self.error = "the server closed the connection"
            self._changed.set()

    def mark(self) -> int:
        return len(self.events)

    async def wait_for(
        self,
        kind: str,
        predicate: Callable[[Received], bool] = lambda r: True,
        *,
        after: int = 0,
        limit_s: float = 30.0,
    ) -> Received:
        deadline = time.monotonic() + limit_s
        position = after
        while True:
            while position < len(self.events):
                received = self.events[position]
                position += 1
                if received.type == kind and predicate(received):
                    return received
            if self.error is not None:
                raise ConnectionError(self.error)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} within {limit_s} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def sent(self, index: int, *, limit_s: float = 30.0) -> float:
        """When frame ``index`` was sent (waiting for it if need be)."""
        deadline = time.monotonic() + limit_s
        while len(self.sent_at) <= index:
            if self.error is not None:
                raise ConnectionError(self.error)
            if time.monotonic() > deadline:
                raise TimeoutError(f"frame {index} not sent within {limit_s} s")
            await asyncio.sleep(FRAME_MS / 1000.0)
        return self.sent_at[index]

    def find(self, kind: str, *, after: int = 0, before: int | None = None) -> list[Received]:
        end = len(self.events) if before is None else before
        return [r for r in self.events[after:end] if r.type == kind]

    async def close(self) -> None:
        self._closed = True
        pacer().remove(self)
        if self._receiver is not None:
            self._receiver.cancel()
            await asyncio.gather(self._receiver, return_exceptions=True)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
