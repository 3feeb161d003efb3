"""A WebRTC caller for tests: an aiortc peer with a scripted microphone, the events of its
``oai-events`` data channel, and (optionally) a room that leaks what its speaker plays back into
its microphone."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from hark.transports.webrtc import hosts

RATE = 48_000
FRAME = RATE // 50
CALLS = "/v1/realtime/calls"


class Room:
    """A speakerphone: what the speaker played comes back into the microphone ``delay_ms``
    later at ``gain_db``. Both run on the RTP clock, 20 ms a frame, so the delay holds."""

    def __init__(self, gain_db: float, delay_ms: int) -> None:
        self.gain = 10 ** (gain_db / 20)
        self._air = bytearray(RATE * delay_ms // 1000 * 2)

    def played(self, pcm: bytes) -> None:
        self._air += pcm

    def heard(self, samples: int) -> np.ndarray:
        chunk = bytes(self._air[: samples * 2])
        del self._air[: samples * 2]
        chunk += bytes(samples * 2 - len(chunk))
        return np.frombuffer(chunk, dtype="<i2").astype(np.float32) * self.gain


class Microphone(MediaStreamTrack):
    """``pcm`` (48 kHz mono PCM16), then silence, 20 ms a frame in real time; ``say`` speaks
    more from now on; with a ``room``, the speaker's leak is mixed in."""

    kind = "audio"

    def __init__(self, pcm: bytes = b"", room: Room | None = None) -> None:
        super().__init__()
        self.pcm = bytearray(pcm)
        self.room = room
        self.sent = 0
        self.said_at = 0
        """The sample ``pcm`` starts at."""
        self.start: float | None = None

    def say(self, pcm: bytes) -> float:
        """Speak ``pcm`` from the next frame on; returns when it ends (the loop's clock)."""
        self.pcm, self.said_at = bytearray(pcm), self.sent
        return asyncio.get_running_loop().time() + len(pcm) / 2 / RATE

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        wait = self.start + self.sent / RATE - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        at = self.sent - self.said_at
        chunk = bytes(self.pcm[at * 2 : (at + FRAME) * 2])
        chunk += bytes(FRAME * 2 - len(chunk))
        if self.room is not None:
            mixed = np.frombuffer(chunk, dtype="<i2").astype(np.float32) + self.room.heard(FRAME)
            chunk = np.clip(mixed, -32768, 32767).astype("<i2").tobytes()
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(chunk)
        frame.pts, frame.sample_rate, frame.time_base = self.sent, RATE, fractions.Fraction(1, RATE)
        self.sent += FRAME
        return frame


class Peer:
    """One aiortc client: its events from the data channel, the reply's energy from its track.
    ``loopback_only``: offer candidates on 127.0.0.1 and ::1 only (hark's own ``hosts``);
    ``codecs``: the audio codecs to offer, in order (MIME types such as ``"audio/PCMU"``),
    instead of aiortc's own list."""

    def __init__(
        self,
        speech: bytes = b"",
        *,
        room: Room | None = None,
        loopback_only: bool = False,
        codecs: tuple[str, ...] = (),
    ) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        self.loud_frames = 0
        self.room = room
        self.loopback_only = loopback_only
        self.microphone = Microphone(speech, room)
        self.pc.addTrack(self.microphone)
        if codecs:
            known = {c.mimeType.lower(): c for c in RTCRtpSender.getCapabilities("audio").codecs}
            self.pc.getTransceivers()[0].setCodecPreferences([known[m.lower()] for m in codecs])
        self.channel = self.pc.createDataChannel("oai-events")
        self.channel_closed = asyncio.Event()
        self.channel.on("message", lambda m: self.events.put_nowait(json.loads(m)))
        self.channel.on("close", self.channel_closed.set)
        self.pc.on("track", lambda t: asyncio.ensure_future(self._listen(t)))

    async def offer(self) -> str:
        offer = await self.pc.createOffer()
        with hosts.offering("only") if self.loopback_only else contextlib.nullcontext():
            await self.pc.setLocalDescription(offer)
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def _listen(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, AudioFrame):
                    continue
                samples = frame.to_ndarray()
                if np.abs(samples).max() > 500:
                    self.loud_frames += 1
                if self.room is not None:
                    channels = len(frame.layout.channels)
                    mono = samples.reshape(-1, channels).astype(np.int32).sum(axis=1) // channels
                    self.room.played(mono.astype("<i2").tobytes())

    async def next(self, kind: str, timeout_s: float = 60.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self.events.get()
                self.seen.append(event)
                if event["type"] == kind:
                    return event

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post_offer(
    base_url: str,
    body: str | bytes,
    content_type: str = "application/sdp",
    key: str | None = None,
    query: str = "",
    *,
    headers: dict[str, str] | None = None,
    local_address: str | None = None,
) -> httpx.Response:
    """POST an offer; ``local_address``: from another loopback address (its own rate limit)."""
    sent = {"Content-Type": content_type, **(auth(key) if key else {}), **(headers or {})}
    transport = httpx.AsyncHTTPTransport(local_address=local_address) if local_address else None
    async with httpx.AsyncClient(base_url=base_url, timeout=30, transport=transport) as client:
        return await client.post(CALLS + query, content=body, headers=sent)


@contextlib.asynccontextmanager
async def call(
    base_url: str,
    peer: Peer,
    key: str | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> AsyncIterator[tuple[Peer, str]]:
    """``peer`` calls; yields it and the call id once the answer is applied."""
    try:
        response = await post_offer(base_url, await peer.offer(), key=key, query=query, headers=headers)
        assert response.status_code == 201, response.text
        assert response.headers["content-type"].startswith("application/sdp")
        call_id = response.headers["location"].rsplit("/", 1)[1]
        assert response.headers["location"] == f"{CALLS}/{call_id}"
        await peer.answer(response.text)
        yield peer, call_id
    finally:
        await peer.pc.close()


async def sessions_active(base_url: str, key: str | None = None) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        text = (await client.get("/metrics", headers=auth(key) if key else {})).text
    match = re.search(r'^hark_sessions_active\{transport="webrtc"\} (\S+)$', text, re.M)
    assert match, "no webrtc sessions gauge"
    return float(match.group(1))


async def until_no_sessions(
    base_url: str, key: str | None = None, timeout_s: float = 15.0, *, interval_s: float = 0.1
) -> None:
    async with asyncio.timeout(timeout_s):
        while await sessions_active(base_url, key) != 0:
            await asyncio.sleep(interval_s)


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert {"message", "type", "code"} <= set(error)
    return error
