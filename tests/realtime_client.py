"""Drives hark through the official openai SDK's Realtime client and records what comes back."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncOpenAI

CHUNK_BYTES = 24_000 * 2 * 40 // 1000  # 40 ms of PCM16 at 24 kHz


@dataclass
class Received:
    at: float
    type: str
    event: Any


@dataclass
class Recorder:
    events: list[Received] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    close_code: int | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, kind: str) -> list[Any]:
        return [r.event for r in self.events if r.type == kind]

    def times(self, kind: str) -> list[float]:
        return [r.at for r in self.events if r.type == kind]

    def summary(self) -> str:
        lines = []
        for r in self.events:
            if r.type == "response.output_audio.delta":
                continue
            e = r.event
            rid = getattr(e, "response_id", None) or getattr(getattr(e, "response", None), "id", None)
            detail = getattr(e, "transcript", None) or getattr(e, "state", None) or getattr(e, "error", None)
            lines.append(f"{r.at:.2f} {r.type} {rid or ''} {detail or ''}")
        return "\n".join(lines[-80:])

    def mark(self) -> int:
        """A position in the event list: wait_for(after=mark) sees only later events."""
        return len(self.events)

    async def wait_for(
        self,
        kind: str,
        predicate: Callable[[Any], bool] = lambda e: True,
        *,
        timeout: float = 30,
        after: int = 0,
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for received in self.events[after:]:
                if received.type == kind and predicate(received.event):
                    return received.event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} within {timeout} s; events:\n{self.summary()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


@asynccontextmanager
async def realtime(
    base_url: str, *, hark_events: bool = True, **session: Any
) -> AsyncIterator[tuple[Any, Recorder]]:
    """``hark_events``: ask for hark's own events (state, latency, …) besides OpenAI's."""
    client = AsyncOpenAI(base_url=base_url + "/v1", api_key="none", max_retries=0)
    recorder = Recorder()
    query = {"hark_events": "1"} if hark_events else {}
    async with client.realtime.connect(model="hark", extra_query=query) as conn:

        async def pump() -> None:
            try:
                async for event in conn:
                    now = time.monotonic()
                    if event.type == "response.output_audio.delta":
                        recorder.audio += base64.b64decode(event.delta)
                    recorder.events.append(Received(now, event.type, event))
                    recorder._changed.set()
            finally:
                # The SDK hides the close frame; its websockets connection keeps the code.
                recorder.close_code = getattr(getattr(conn, "_connection", None), "close_code", None)
                recorder._changed.set()

        reader = asyncio.create_task(pump())
        await recorder.wait_for("session.created")
        config = {"type": "realtime", "output_modalities": ["audio"], **session}
        await conn.session.update(session=config)
        await recorder.wait_for("session.updated")
        try:
            yield conn, recorder
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    await client.close()


async def send_audio(conn: Any, pcm: bytes, *, realtime_pace: bool = True, speed: float = 1.0) -> float:
    """Append ``pcm`` in 40 ms chunks; paced like a microphone unless told otherwise.
    Returns time.monotonic() when the first chunk was sent."""
    started = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), CHUNK_BYTES)):
        await conn.input_audio_buffer.append(
            audio=base64.b64encode(pcm[offset : offset + CHUNK_BYTES]).decode()
        )
        if realtime_pace:
            target = started + (index + 1) * 0.04 / speed
            await asyncio.sleep(max(0.0, target - time.monotonic()))
        elif index % 25 == 0:
            await asyncio.sleep(0)
    return started
