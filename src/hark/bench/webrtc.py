"""``hark bench --only webrtc``: the same spoken turns over the WebSocket and over a WebRTC call,
against one hark (the fixed-delay fakes in every stage), and what a call costs in CPU.

Both clients send 20 ms of microphone at real time (silence, then espeak-ng's question, after
``phase_ms(turn)`` more silence so that turns end at every phase of the VAD's chunks) and
time, on their own clock:

- voice-to-voice: the last speech frame sent to the first reply audio received (WebSocket: the
  first binary reply frame; WebRTC: the first loud packet of the reply as it comes off the wire,
  decoded by the client itself in front of aiortc's jitter buffer). On WebRTC also
  ``voice_to_voice_after_jitter_buffer_ms``: to the first loud frame aiortc's jitter buffer
  releases to the track (four packets deep, so ~80 ms later), which is when aiortc would play
  it; a browser's adaptive buffer on loopback holds far less;
- speech stopped: the last speech frame sent to ``input_audio_buffer.speech_stopped`` received
  (where the turn's end was heard; the rest of voice-to-voice is the reply on its way out);
- barge-in: the interruption's first frame sent to ``output_audio_buffer.cleared`` (both), and
  on WebRTC to the last loud frame of the reply on the track (what the listener hears stop);
- CPU per session-second: the server process's CPU time while N sessions listen to silence
  (WebRTC: Opus decoded in, settled silence out as one packet every 400 ms under ``webrtc.dtx``,
  the default; ``cpu_ms_per_session_s_dtx_off``: on a second server with it off, a packet
  every 20 ms), per session and second.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import itertools
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import soxr
import websockets

from hark.bench.audio import INTERRUPTION, QUESTION, RATE, utterance
from hark.bench.server import cpu_seconds, hark_server, scripted_env

CALL_RATE = 48_000
LOUD = 500
"""A decoded frame whose peak passes this is reply audio, not silence."""
TIMEOUT_S = 30.0
VAD_CHUNK_MS = 32
"""The listener's VAD hears in 32 ms chunks: where the question ends against them moves the
turn's end by up to a chunk (more, with the VAD's hysteresis on the fading tail)."""


def phase_ms(turn: int) -> int:
    """Silence put before the question in ``turn``, the same on both transports: spread over a
    VAD chunk by the golden ratio, so that a few turns already fall on different phases. Without
    it every run put each transport's turns on phases of its own, the same every time: the
    WebSocket's first three 282-322 ms to ``speech_stopped``, the call's (whose VAD grid starts
    at its first decoded packet) 344-403 ms, and the medians compared phases, not transports
    (docs/benchmarks.md, entry 33)."""
    return int(VAD_CHUNK_MS * ((turn * 0.6180339887) % 1.0))


def _resample(pcm: bytes, rate: int) -> bytes:
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return bytes((np.clip(soxr.resample(audio, RATE, rate), -1, 1) * 32767).astype("<i2").tobytes())


class _Mic:
    """20 ms frames at real time: what was queued, else silence."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.frame_bytes = rate // 50 * 2
        self.queue: list[bytes] = []
        self.first_sent = 0.0
        self.last_sent = 0.0

    def say(self, pcm: bytes) -> None:
        pcm += bytes(-len(pcm) % self.frame_bytes)
        self.queue = [pcm[i : i + self.frame_bytes] for i in range(0, len(pcm), self.frame_bytes)]
        self.first_sent = self.last_sent = 0.0

    def next_frame(self) -> bytes:
        if not self.queue:
            return bytes(self.frame_bytes)
        now = time.monotonic()
        self.first_sent = self.first_sent or now
        self.last_sent = now
        return self.queue.pop(0)


class _Client:
    """What both transports' clients record: events by type with arrival times, reply audio."""

    def __init__(self, rate: int) -> None:
        self.mic = _Mic(rate)
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.audio_at: list[float] = []
        """Reply audio released for playing (WebRTC: out of the jitter buffer)."""
        self.arrived_at: list[float] = []
        """Reply audio as it came off the wire (WebSocket: the same as ``audio_at``)."""
        self.changed = asyncio.Event()

    def event(self, data: dict[str, Any]) -> None:
        self.events.append((time.monotonic(), data))
        self.changed.set()

    def audio(self) -> None:
        self.audio_at.append(time.monotonic())
        self.changed.set()

    def arrived(self) -> None:
        self.arrived_at.append(time.monotonic())
        self.changed.set()

    async def until(self, test: Callable[[], Any]) -> Any:
        async with asyncio.timeout(TIMEOUT_S):
            while not (found := test()):
                self.changed.clear()
                await self.changed.wait()
            return found

    def audio_after(self, t: float) -> float | None:
        return next((a for a in self.audio_at if a > t), None)

    def arrived_after(self, t: float) -> float | None:
        return next((a for a in self.arrived_at if a > t), None)

    def seen(self, kind: str, after: float) -> tuple[float, dict[str, Any]] | None:
        return next(((t, e) for t, e in self.events if t > after and e.get("type") == kind), None)


async def _turns(client: _Client, question: bytes, interruption: bytes, turns: int) -> dict[str, list[float]]:
    v2v: list[float] = []
    v2v_played: list[float] = []
    heard_end: list[float] = []
    cleared: list[float] = []
    stopped: list[float] = []
    for turn in range(turns + 1):
        client.mic.say(bytes(client.mic.rate * phase_ms(turn) // 1000 * 2) + question)
        await client.until(lambda: not client.mic.queue)
        spoke = client.mic.last_sent
        first = await client.until(functools.partial(client.arrived_after, spoke))
        played = await client.until(functools.partial(client.audio_after, spoke))
        if turn == turns:  # the last turn is interrupted
            await asyncio.sleep(0.5)
            client.mic.say(interruption)
            await client.until(lambda: client.mic.first_sent)
            cut = client.mic.first_sent
            at, _ = await client.until(functools.partial(client.seen, "output_audio_buffer.cleared", cut))
            cleared.append((at - cut) * 1000)
            await asyncio.sleep(1.0)
            loud = [t for t in client.audio_at if cut < t]
            stopped.append((_last_before_gap(loud) - cut) * 1000 if loud else 0.0)
        else:
            v2v.append((first - spoke) * 1000)
            v2v_played.append((played - spoke) * 1000)
            ended = client.seen("input_audio_buffer.speech_stopped", spoke)
            if ended is not None:
                heard_end.append((ended[0] - spoke) * 1000)
        await client.until(functools.partial(client.seen, "response.done", spoke))
        await asyncio.sleep(1.5)  # the reply plays out
    return {
        "v2v": v2v,
        "v2v_played": v2v_played,
        "heard_end": heard_end,
        "cleared": cleared,
        "stopped": stopped,
    }


def _last_before_gap(times: list[float], gap_s: float = 0.2) -> float:
    """The last of the reply's frames: the first gap of silence ends the reply."""
    for earlier, later in itertools.pairwise(times):
        if later - earlier > gap_s:
            return earlier
    return times[-1]


# -- the WebSocket client --------------------------------------------------------------------


async def _ws_session(ws_base: str, work: Callable[[_Client], Any]) -> Any:
    client = _Client(RATE)
    async with websockets.connect(f"{ws_base}/v1/realtime?audio=binary", max_size=2**22) as ws:

        async def receive() -> None:
            async for message in ws:
                if isinstance(message, bytes):
                    client.audio()
                    client.arrived()
                else:
                    client.event(json.loads(message))

        async def microphone() -> None:
            start, index = time.monotonic(), 0
            while True:
                await ws.send(client.mic.next_frame())
                index += 1
                await asyncio.sleep(max(0.0, start + index * 0.02 - time.monotonic()))

        tasks = [asyncio.create_task(receive()), asyncio.create_task(microphone())]
        try:
            return await work(client)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


# -- the WebRTC client -----------------------------------------------------------------------


def _loud(samples: np.ndarray) -> bool:
    return bool(samples.size) and int(np.abs(samples.astype(np.int32)).max()) > LOUD


class _Arrivals:
    """In front of aiortc's jitter buffer (which it calls with each depayloaded RTP packet):
    every Opus packet is decoded here as it comes off the wire, and ``on_loud`` runs for each
    loud one, before the buffer holds it back; then the packet goes on to the buffer."""

    def __init__(self, buffer: Any, on_loud: Callable[[], None]) -> None:
        from hark.transports.webrtc.opus import opus_decoder

        self.buffer = buffer
        self.on_loud = on_loud
        self._decoder = opus_decoder(CALL_RATE)

    @classmethod
    def install(cls, receiver: object, on_loud: Callable[[], None]) -> None:
        from hark.transports.webrtc.opus import JITTER_BUFFER

        buffer = getattr(receiver, JITTER_BUFFER, None)
        if buffer is None or not hasattr(buffer, "add"):
            raise RuntimeError("aiortc keeps its jitter buffer elsewhere: arrivals cannot be timed")
        setattr(receiver, JITTER_BUFFER, cls(buffer, on_loud))

    def add(self, packet: Any) -> Any:
        from av import FFmpegError, Packet

        data: bytes = getattr(packet, "_data", b"")
        if data:
            try:
                frames = self._decoder.decode(Packet(data))
            except FFmpegError:
                frames = []
            if any(_loud(frame.to_ndarray()) for frame in frames):
                self.on_loud()
        return self.buffer.add(packet)


async def _call_session(base_url: str, work: Callable[[_Client], Any]) -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
    from av import AudioFrame

    client = _Client(CALL_RATE)
    samples = CALL_RATE // 50

    class Microphone(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.start: float | None = None
            self.sent = 0

        async def recv(self) -> AudioFrame:
            now = time.monotonic()
            self.start = self.start or now
            await asyncio.sleep(max(0.0, self.start + self.sent / CALL_RATE - now))
            frame = AudioFrame(format="s16", layout="mono", samples=samples)
            frame.planes[0].update(client.mic.next_frame())
            frame.pts, frame.sample_rate = self.sent, CALL_RATE
            frame.time_base = fractions.Fraction(1, CALL_RATE)
            self.sent += samples
            return frame

    async def listen(track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, AudioFrame) and _loud(frame.to_ndarray()):
                    client.audio()
        except MediaStreamError:
            return

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    tasks: list[asyncio.Task[None]] = []
    sender = pc.addTrack(Microphone())
    for transceiver in pc.getTransceivers():
        if transceiver.sender is sender:
            _Arrivals.install(transceiver.receiver, client.arrived)
    channel = pc.createDataChannel("oai-events")
    channel.on("message", lambda m: client.event(json.loads(m)))
    pc.on("track", lambda track: tasks.append(asyncio.create_task(listen(track))))
    opened = asyncio.Event()
    channel.on("open", opened.set)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            answer = await http.post(
                "/v1/realtime/calls",
                content=pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp"},
            )
        answer.raise_for_status()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.text, type="answer"))
        async with asyncio.timeout(TIMEOUT_S):
            await opened.wait()
        return await work(client)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pc.close()


# -- the scenario ------------------------------------------------------------------------------


async def _cpu_per_session_s(
    pid: int, open_session: Callable[..., Any], sessions: int, seconds: float
) -> float:
    async def hold(client: _Client) -> None:
        await asyncio.sleep(seconds + 2.0)

    async def measure() -> float:
        await asyncio.sleep(1.5)  # every session set up
        before = cpu_seconds(pid)
        await asyncio.sleep(seconds)
        return (cpu_seconds(pid) - before) * 1000.0 / (sessions * seconds)

    measured = asyncio.create_task(measure())
    await asyncio.gather(*(open_session(hold) for _ in range(sessions)))
    return await measured


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
    }


def run(
    *, turns: int = 3, sessions: int = 4, seconds: float = 10.0, log: Callable[[str], None] = print
) -> dict[str, Any]:
    question = utterance(QUESTION).pcm
    interruption = utterance(INTERRUPTION).pcm
    result: dict[str, Any] = {"turns": turns}
    with hark_server(scripted_env(tts_ms_per_char=60.0)) as hark:  # replies long enough to interrupt

        async def measure() -> None:
            ws_base, base = hark.ws_base, hark.base_url

            async def over_ws(work: Callable[[_Client], Any]) -> Any:
                return await _ws_session(ws_base, work)

            async def over_call(work: Callable[[_Client], Any]) -> Any:
                return await _call_session(base, work)

            ws = await over_ws(lambda c: _turns(c, question, interruption, turns))
            call = await over_call(
                lambda c: _turns(c, _resample(question, CALL_RATE), _resample(interruption, CALL_RATE), turns)
            )
            for name, figures in (("websocket", ws), ("webrtc", call)):
                result[name] = {
                    "voice_to_voice_ms": _summary(figures["v2v"]),
                    "bargein_cleared_ms": _summary(figures["cleared"]),
                    "speech_stopped_ms": _summary(figures["heard_end"]),
                }
            result["webrtc"]["voice_to_voice_after_jitter_buffer_ms"] = _summary(call["v2v_played"])
            result["webrtc"]["bargein_audio_stopped_ms"] = _summary(call["stopped"])
            result["websocket"]["cpu_ms_per_session_s"] = round(
                await _cpu_per_session_s(hark.pid, over_ws, sessions, seconds), 2
            )
            result["webrtc"]["cpu_ms_per_session_s"] = round(
                await _cpu_per_session_s(hark.pid, over_call, sessions, seconds), 2
            )

        asyncio.run(measure())
    # The same calls' CPU with webrtc.dtx off: a silent packet every 20 ms, always.
    with hark_server({**scripted_env(tts_ms_per_char=60.0), "HARK_WEBRTC_DTX": "false"}) as hark:

        async def without_dtx() -> float:
            async def over_call(work: Callable[[_Client], Any]) -> Any:
                return await _call_session(hark.base_url, work)

            return await _cpu_per_session_s(hark.pid, over_call, sessions, seconds)

        result["webrtc"]["cpu_ms_per_session_s_dtx_off"] = round(asyncio.run(without_dtx()), 2)
    ws_p50 = result["websocket"]["voice_to_voice_ms"].get("p50")
    rtc_p50 = result["webrtc"]["voice_to_voice_ms"].get("p50")
    if ws_p50 is not None and rtc_p50 is not None:
        result["webrtc_adds_voice_to_voice_ms_p50"] = round(rtc_p50 - ws_p50, 1)
    played_p50 = result["webrtc"]["voice_to_voice_after_jitter_buffer_ms"].get("p50")
    if ws_p50 is not None and played_p50 is not None:
        result["webrtc_adds_voice_to_voice_after_jitter_buffer_ms_p50"] = round(played_p50 - ws_p50, 1)
    result["webrtc_adds_cpu_ms_per_session_s"] = round(
        result["webrtc"]["cpu_ms_per_session_s"] - result["websocket"]["cpu_ms_per_session_s"], 2
    )
    log(f"   {json.dumps(result)}")
    return result
