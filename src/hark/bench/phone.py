"""``hark bench --only phone``: a phone call over Twilio Media Streams, measured like a caller.

hark runs its local engines (faster-whisper tiny.en and Piper in the worker pool) with the
scripted LLM (200 ms to the first token), Twilio enabled on loopback. The bench plays Twilio: it
posts the incoming-call webhook, connects the stream with the token from the TwiML, sends 20 ms
μ-law frames at real time (silence, then espeak-ng's question resampled to 8 kHz), and plays the
reply at real time, echoing each ``mark`` when the audio before it has played. Reported: ``start``
to the greeting's first ``media``, and voice-to-voice (the last speech frame sent to the first
reply ``media`` received, so the 300 ms end-of-turn silence is in it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import soxr
import websockets

from hark.bench.audio import RATE, utterance
from hark.bench.server import hark_server
from hark.transports.twilio import mulaw

FRAME_S = mulaw.FRAME_MS / 1000
SILENCE = b"\xff" * mulaw.FRAME_BYTES
QUIET_S = 1.0
"""No reply audio for this long (and none left to play): the reply is over."""


def _env() -> dict[str, str]:
    llm = [{"kind": "scripted", "options": {"first_token_ms": 200, "token_ms": 20}}]
    return {"HARK_TWILIO_ENABLED": "true", "HARK_LLM_PROVIDERS": json.dumps(llm)}


class _Line:
    """One call's stream: the microphone sends a frame every 20 ms; reply audio is played from
    a buffer at real time, marks echoed as they are reached."""

    def __init__(self, ws: Any, stream_sid: str) -> None:
        self.ws, self.sid = ws, stream_sid
        self.to_say: list[bytes] = []
        self.last_speech_sent = 0.0
        self.media_at: list[float] = []
        self._arrived = asyncio.Event()
        self._buffer: list[tuple[str, str]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"streamSid": self.sid, **message}))

    async def microphone(self) -> None:
        started, index = time.monotonic(), 0
        while True:
            frame = self.to_say.pop(0) if self.to_say else SILENCE
            payload = base64.b64encode(frame).decode()
            await self.send({"event": "media", "media": {"track": "inbound", "payload": payload}})
            if frame is not SILENCE and not self.to_say:
                self.last_speech_sent = time.monotonic()
            index += 1
            await asyncio.sleep(max(0.0, started + index * FRAME_S - time.monotonic()))

    async def receive(self) -> None:
        async for text in self.ws:
            message = json.loads(text)
            event = message.get("event")
            if event == "media":
                self.media_at.append(time.monotonic())
                self._arrived.set()
                self._buffer.append(("audio", message["media"]["payload"]))
            elif event == "mark":
                self._buffer.append(("mark", message["mark"]["name"]))
            elif event == "clear":
                self._buffer = [item for item in self._buffer if item[0] == "mark"]

    async def speaker(self) -> None:
        while True:
            await asyncio.sleep(FRAME_S)
            played = 0
            while self._buffer and played < mulaw.FRAME_BYTES:
                kind, item = self._buffer.pop(0)
                if kind == "mark":
                    await self.send({"event": "mark", "mark": {"name": item}})
                else:
                    played += len(base64.b64decode(item))

    async def reply(self, heard: int) -> None:
        """Until a reply after the first ``heard`` media messages has come and played out
        (raises TimeoutError after a minute)."""
        async with asyncio.timeout(60.0):
            while len(self.media_at) <= heard:
                self._arrived.clear()
                await self._arrived.wait()
            # Quiet is a span of time with nothing new: polled on the clock, not an event.
            while self._buffer or time.monotonic() - self.media_at[-1] < QUIET_S:  # noqa: ASYNC110
                await asyncio.sleep(0.05)


async def _call(base_url: str, speech: bytes, turns: int) -> dict[str, Any]:
    call_sid = "CA" + secrets.token_hex(16)
    form = {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32, "From": "+15005550006", "To": "+15005550001"}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        answer = await http.post("/twilio/voice", data=form)
    answer.raise_for_status()
    stream = ET.fromstring(answer.text).find("./Connect/Stream")
    if stream is None:
        raise RuntimeError("the webhook's TwiML has no <Connect><Stream>")
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    stream_sid = "MZ" + secrets.token_hex(16)
    async with websockets.connect(stream.attrib["url"], max_size=2**20) as ws:
        line = _Line(ws, stream_sid)
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await line.send({"event": "start", "start": start})
        started = time.monotonic()
        tasks = [asyncio.create_task(c) for c in (line.receive(), line.microphone(), line.speaker())]
        try:
            await line.reply(0)
            greeting_ms = (line.media_at[0] - started) * 1000 if line.media_at else None
            voice_to_voice = []
            for _ in range(turns):
                heard = len(line.media_at)
                line.to_say = mulaw.frames(mulaw.encode(speech))
                line.to_say[-1] = line.to_say[-1].ljust(mulaw.FRAME_BYTES, b"\xff")
                await line.reply(heard)
                if len(line.media_at) > heard and line.last_speech_sent:
                    voice_to_voice.append((line.media_at[heard] - line.last_speech_sent) * 1000)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {"greeting_ms": greeting_ms, "voice_to_voice_ms": voice_to_voice}


def _pcm8k(pcm24k: bytes) -> bytes:
    audio = np.frombuffer(pcm24k, dtype="<i2").astype(np.float32) / 32768.0
    resampled = soxr.resample(audio, RATE, mulaw.RATE)
    return bytes((np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes())


def run(*, calls: int = 3, turns: int = 3, log: Callable[[str], None] = print) -> dict[str, Any]:
    speech = _pcm8k(utterance().pcm)
    results = []
    with hark_server(_env()) as hark:
        for n in range(calls):
            result = asyncio.run(_call(hark.base_url, speech, turns))
            log(f"   call {n + 1}: {result}")
            results.append(result)
    greetings = [r["greeting_ms"] for r in results if r["greeting_ms"] is not None]
    v2v = sorted(ms for r in results for ms in r["voice_to_voice_ms"])
    summary: dict[str, Any] = {"calls": calls, "turns": len(v2v)}
    if greetings:
        summary["greeting_ms_p50"] = round(statistics.median(greetings), 1)
    if v2v:
        summary["voice_to_voice_ms_p50"] = round(statistics.median(v2v), 1)
        summary["voice_to_voice_ms_p95"] = round(v2v[min(len(v2v) - 1, int(0.95 * len(v2v)))], 1)
    with contextlib.suppress(ValueError):
        summary["voice_to_voice_ms_spread"] = round(statistics.stdev(v2v), 1)
    return summary
