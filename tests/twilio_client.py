"""A loopback stand-in for Twilio: the incoming-call webhook as Twilio sends it (form-encoded,
signed), and a Media Stream speaking Twilio's documented messages.

The stream behaves like a phone line: the caller's "microphone" sends a 20 ms μ-law ``media``
frame every 20 ms (silence when nothing is being said), and reply audio from hark is "played" in
real time from a buffer: a ``mark`` is echoed once the audio before it has played, and ``clear``
empties the buffer (echoing the marks still in it, as Twilio does).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import websockets

from hark.transports.twilio import mulaw, signature

FRAME_S = 0.02
SILENCE = b"\xff" * mulaw.FRAME_BYTES


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


@dataclass
class Twiml:
    stream_url: str
    parameters: dict[str, str]


def parse_twiml(text: str) -> Twiml:
    root = ET.fromstring(text)
    stream = root.find("./Connect/Stream")
    assert stream is not None, text
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return Twiml(stream.attrib["url"], parameters)


async def incoming_call(
    base_url: str,
    *,
    auth_token: str | None,
    public_url: str | None = None,
    call_sid: str | None = None,
    extra: dict[str, str] | None = None,
    signature_override: str | None = None,
) -> httpx.Response:
    """POST Twilio's voice webhook. The signature covers ``public_url`` (the URL Twilio was
    given) when set, else the address hark is reached at."""
    params = {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid or new_call_sid(),
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": "+15005550006",
        "To": "+15005550001",
        **(extra or {}),
    }
    url = (public_url or base_url) + "/twilio/voice"
    headers = {}
    if signature_override is not None:
        headers["X-Twilio-Signature"] = signature_override
    elif auth_token is not None:
        headers["X-Twilio-Signature"] = signature.compute(auth_token, url, params.items())
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.post("/twilio/voice", data=params, headers=headers)


@dataclass
class Sent:
    at: float
    message: dict[str, Any]


@dataclass
class PhoneCall:
    ws: Any
    stream_sid: str
    echo_marks: bool = True
    """False: marks are never echoed (as if the audio were stuck in Twilio's buffer)."""
    leak_db: float | None = None
    """A speakerphone: what the caller hears leaks back into the microphone at this gain,
    ``leak_frames`` 20 ms frames later (None: no leak)."""
    leak_frames: int = 4
    received: list[Sent] = field(default_factory=list)
    played: bytearray = field(default_factory=bytearray)
    """Reply μ-law the caller has heard."""
    close_code: int | None = None
    close_reason: str | None = None
    line_open: bool = True
    """False: the line sends nothing more (a stalled socket)."""
    _buffer: list[tuple[str, bytes | str]] = field(default_factory=list)
    """("audio", μ-law) and ("mark", name) not yet played."""
    _to_say: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    speech_times: list[float] = field(default_factory=list)
    _sequence: int = 2
    _chunk: int = 0
    _room: dict[int, bytes] = field(default_factory=dict)
    """μ-law frames the caller heard, by the speaker's tick, on their way back into the microphone."""

    def of(self, event: str) -> list[Sent]:
        return [r for r in self.received if r.message.get("event") == event]

    async def wait_for(self, event: str, *, after: float = 0.0, timeout: float = 30.0) -> Sent:
        deadline = time.monotonic() + timeout
        while True:
            for record in self.received:
                if record.at >= after and record.message.get("event") == event:
                    return record
            if self.close_code is not None:
                raise AssertionError(f"the stream closed ({self.close_code}) before a {event}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {event} within {timeout} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_quiet(self, seconds: float, *, min_played_s: float = 0.0, timeout: float = 60.0) -> None:
        """Until no reply audio is left to play, none has come for ``seconds``, and at least
        ``min_played_s`` of it has played (a reply's sentences can come apart under load)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            media = self.of("media")
            last = media[-1].at if media else 0.0
            enough = len(self.played) / mulaw.RATE >= min_played_s
            if enough and not self._buffer and time.monotonic() - last >= seconds:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("reply audio kept coming")

    async def say(self, pcm8k: bytes) -> tuple[float, float]:
        """Speak PCM16 8 kHz into the call, in real time; returns when its first and its last
        frame were sent (time.monotonic())."""
        frames = mulaw.frames(mulaw.encode(pcm8k))
        frames[-1] = frames[-1].ljust(mulaw.FRAME_BYTES, b"\xff")
        self.speech_times = []
        for frame in frames:
            self._to_say.put_nowait(frame)
        while len(self.speech_times) < len(frames):
            await asyncio.sleep(FRAME_S / 2)
        return self.speech_times[0], self.speech_times[-1]

    async def send(self, message: dict[str, Any]) -> None:
        self._sequence += 1
        await self.ws.send(
            json.dumps({"sequenceNumber": str(self._sequence), "streamSid": self.stream_sid, **message})
        )

    async def dtmf(self, digit: str) -> None:
        await self.send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}})

    # -- the line ---------------------------------------------------------------------------

    async def _microphone(self) -> None:
        started = time.monotonic()
        index = 0
        while True:
            if not self.line_open:
                await asyncio.sleep(FRAME_S)
                continue
            try:
                frame = self._to_say.get_nowait()
                self.speech_times.append(time.monotonic())
            except asyncio.QueueEmpty:
                frame = SILENCE
            frame = self._leak(frame, index)
            self._chunk += 1
            await self.send(
                {
                    "event": "media",
                    "media": {
                        "track": "inbound",
                        "chunk": str(self._chunk),
                        "timestamp": str(int((time.monotonic() - started) * 1000)),
                        "payload": base64.b64encode(frame).decode(),
                    },
                }
            )
            index += 1
            await asyncio.sleep(max(0.0, started + index * FRAME_S - time.monotonic()))

    def _leak(self, frame: bytes, tick: int) -> bytes:
        # By tick, both on the clock: the delay stays the same when the loop runs late.
        echo = self._room.pop(tick - self.leak_frames, None) if self.leak_db is not None else None
        if echo is None:
            return frame
        heard = np.frombuffer(mulaw.decode(echo), dtype="<i2").astype(np.float32)
        said = np.frombuffer(mulaw.decode(frame), dtype="<i2").astype(np.float32)
        mixed = said + heard * 10 ** (self.leak_db / 20)
        return mulaw.encode(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())

    async def _speaker(self) -> None:
        """Plays the buffer in real time, 20 ms at a time, echoing marks as it reaches them."""
        started = time.monotonic()
        index = 0
        while True:
            # On the clock, as the microphone is: a leak then comes back at a steady delay.
            index += 1
            await asyncio.sleep(max(0.0, started + index * FRAME_S - time.monotonic()))
            before = len(self.played)
            budget = mulaw.FRAME_BYTES
            while self._buffer:
                kind, item = self._buffer[0]
                if kind == "mark":
                    self._buffer.pop(0)
                    if self.echo_marks:
                        await self.send({"event": "mark", "mark": {"name": item}})
                    continue
                if budget == 0:
                    break
                audio = bytes(item) if isinstance(item, bytes) else b""
                take, rest = audio[:budget], audio[budget:]
                self.played += take
                budget -= len(take)
                if rest:
                    self._buffer[0] = ("audio", rest)
                else:
                    self._buffer.pop(0)
            if self.leak_db is not None:
                self._room[index] = bytes(self.played[before:]).ljust(mulaw.FRAME_BYTES, b"\xff")
                self._room.pop(index - 50, None)  # never picked up: the microphone ran ahead

    async def _receive(self) -> None:
        try:
            async for text in self.ws:
                message = json.loads(text)
                self.received.append(Sent(time.monotonic(), message))
                assert message.get("streamSid") == self.stream_sid, message
                event = message.get("event")
                if event == "media":
                    self._buffer.append(("audio", base64.b64decode(message["media"]["payload"])))
                elif event == "mark":
                    self._buffer.append(("mark", message["mark"]["name"]))
                elif event == "clear":
                    marks = [name for kind, name in self._buffer if kind == "mark"]
                    self._buffer.clear()
                    for name in marks:
                        if self.echo_marks:
                            await self.send({"event": "mark", "mark": {"name": name}})
                self._changed.set()
        except websockets.ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
            self.close_reason = exc.rcvd.reason if exc.rcvd is not None else None
        else:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
        self._changed.set()


def start_message(stream_sid: str, call_sid: str, parameters: dict[str, str]) -> dict[str, Any]:
    return {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC" + "0" * 32,
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": stream_sid,
    }


@asynccontextmanager
async def phone_call(
    ws_url: str,
    call_sid: str,
    parameters: dict[str, str],
    *,
    echo_marks: bool = True,
    leak_db: float | None = None,
) -> AsyncIterator[tuple[PhoneCall, float]]:
    """Connect the stream as Twilio does (``connected``, then ``start``) and keep the line open:
    yields the call and when ``start`` was sent (time.monotonic())."""
    stream_sid = "MZ" + secrets.token_hex(16)
    async with websockets.connect(ws_url, max_size=2**20) as ws:
        call = PhoneCall(ws, stream_sid, echo_marks=echo_marks, leak_db=leak_db)
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps(start_message(stream_sid, call_sid, parameters)))
        started = time.monotonic()
        tasks = [asyncio.create_task(c) for c in (call._receive(), call._microphone(), call._speaker())]
        try:
            yield call, started
        finally:
            for task in tasks[1:]:
                task.cancel()
            with contextlib.suppress(Exception):
                await call.send(
                    {"event": "stop", "stop": {"accountSid": "AC" + "0" * 32, "callSid": call_sid}}
                )
            await ws.close()
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
