"""A bench client: WebSocket sessions that stream audio like microphones and timestamp every
frame they send and every message they receive.

Audio goes out in 20 ms frames at real-time pace from the moment a session starts: queued
speech when there is some, silence otherwise (a microphone never stops). One ``Pacer`` task per
event loop sends the next frame of every session each 20 ms tick, so a client with a hundred
sessions has one timer, not a hundred. ``sent_at[i]`` is when frame ``i`` of a session left.

Without a negotiated extension (no permessage-deflate: the capacity scenario) a frame's bytes on
the wire do not depend on what was sent before, so each distinct payload is framed (and masked)
once by websockets and then written straight to the socket's transport: the same bytes the
server would get through ``send()``, without websockets' per-message Python around them. The
capacity scenario sends 12,500 frames a second at 250 sessions; that path is what lets one core
keep up (docs/benchmarks.md, speed-work log).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.protocol import State

from hark.bench.audio import FRAME_BYTES, FRAME_MS, RATE

SILENT_FRAME = bytes(FRAME_BYTES)
WRITE_LIMIT_BYTES = 1 << 20
"""Bytes waiting in a session's socket buffer beyond which the server is taken to have stopped
reading (the direct path has no ``drain()``; 1 MiB is ten seconds of input audio)."""
_resampled: list[int] = []
_framed: dict[str | bytes, bytes] = {}
_FRAMED_MAX = 4096


def wire_frame(message: str | bytes) -> bytes:
    """``message`` as one masked client frame (text for ``str``, binary for ``bytes``), framed
    by websockets with a fresh mask the first time this payload is seen, then reused. Bench
    payloads are a few dozen distinct frames sent over and over; the cache is a dict keyed by the
    payload objects themselves (their hash is cached, a hit is an identity check)."""
    framed = _framed.get(message)
    if framed is None:
        if len(_framed) >= _FRAMED_MAX:
            _framed.clear()
        if isinstance(message, str):
            frame = Frame(Opcode.TEXT, message.encode())
        else:
            frame = Frame(Opcode.BINARY, message)
        framed = _framed[message] = frame.serialize(mask=True)
    return framed


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


def resampled_table(frames: int) -> Sequence[int]:
    """``resampled_samples(i)`` for ``i`` in ``range(frames)``, as one sequence (a slice of the
    table, not a call per frame: a session late in a long run is tens of thousands of frames in)."""
    if frames <= 0:
        return []
    resampled_samples(frames - 1)
    return _resampled[:frames]


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
                if session.direct:
                    session.send_now(target)
                else:
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
    sent_at: array[float] = field(default_factory=lambda: array("d"))
    events: list[Received] = field(default_factory=list)
    lateness_ms: array[float] = field(default_factory=lambda: array("d"))
    audio_bytes_received: int = 0
    error: str | None = None
    direct: bool = False
    """Frames are written pre-framed to the transport (no extension was negotiated)."""
    _queue: collections.deque[str | bytes] = field(default_factory=collections.deque)
    _waiters: list[tuple[str, asyncio.Future[None]]] = field(default_factory=list)
    """``wait_for`` calls in progress: the event type each waits for, and its wake-up."""
    _receiver: asyncio.Task[None] | None = None
    _ws: Any = None
    _transport: Any = None
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
        self._transport = self._ws.transport
        self.direct = not self._ws.protocol.extensions
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
            self._failed(f"send: {type(exc).__name__}: {exc}")
            return
        self.sent_at.append(now)
        self.lateness_ms.append(max(0.0, (now - target) * 1000.0))

    def send_now(self, target: float) -> None:
        """``send_next`` on the direct path: the frame's bytes straight to the transport."""
        if self._closed or self.error is not None:
            pacer().remove(self)
            return
        message = self._queue.popleft() if self._queue else self._silence
        self._assigned += 1
        transport = self._transport
        if self._ws.protocol.state is not State.OPEN or transport.is_closing():
            self._failed("send: the connection is closed")
            return
        if transport.get_write_buffer_size() > WRITE_LIMIT_BYTES:
            self._failed("send: the server stopped reading")
            return
        now = time.monotonic()
        transport.write(wire_frame(message))
        self.sent_at.append(now)
        self.lateness_ms.append(max(0.0, (now - target) * 1000.0))

    def _failed(self, error: str) -> None:
        if not self._closed:
            self.error = error
            self._wake(None)
        pacer().remove(self)

    def _wake(self, kind: str | None) -> None:
        """Wake the ``wait_for`` calls waiting for ``kind`` (all of them for None)."""
        for waits_for, waiter in self._waiters:
            if (kind is None or waits_for == kind) and not waiter.done():
                waiter.set_result(None)

    async def _receive(self) -> None:
        try:
            async for message in self._ws:
                now = time.monotonic()
                if isinstance(message, bytes):
                    self.audio_bytes_received += len(message)
                    kind = "audio"
                    data: dict[str, Any] = {"response_id": self._response_id, "bytes": len(message)}
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
                self._wake(kind)
        except Exception as exc:
            if not self._closed:
                self.error = f"receive: {type(exc).__name__}: {exc}"
        finally:
            if not self._closed and self.error is None:
                self.error = "the server closed the connection"
            self._wake(None)

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
        loop = asyncio.get_running_loop()
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
            # Woken only by an event of this type (or the end of the connection): the reply's
            # audio does not wake a wait for response.done once per chunk.
            entry: tuple[str, asyncio.Future[None]] = (kind, loop.create_future())
            self._waiters.append(entry)
            try:
                async with asyncio.timeout(remaining):
                    await entry[1]
            except TimeoutError:
                pass
            finally:
                self._waiters.remove(entry)

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
