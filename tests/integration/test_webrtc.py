"""The WebRTC edge against a real ``hark serve`` (real local models, echo mode, API keys on),
from a Python aiortc peer: offers in every wrong shape, content types, tokens missing or
reused, the session cap, hang-up, a peer that never connects, and the sideband WebSocket.
After each, nothing is left: the sessions gauge is back to 0."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from tests.servers import HarkProcess
from tests.speech import silence, speak

aiortc = pytest.importorskip("aiortc")
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402
from av import AudioFrame  # noqa: E402

pytestmark = pytest.mark.slow

API_KEY = "sk-hark-webrtc-tests-0123456789"
RATE = 48_000
FRAME = RATE // 50
CALLS = "/v1/realtime/calls"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HarkProcess]:
    env = {
        "HARK_SECURITY_API_KEYS": json.dumps([API_KEY]),
        "HARK_SECURITY_MAX_SESSIONS": "2",
        "HARK_WEBRTC_CONNECT_TIMEOUT_S": "2",
        "HARK_TTS_PIPER_NOISE_W_SCALE": "0",
    }
    log = tmp_path_factory.mktemp("hark-webrtc") / "server.log"
    with HarkProcess(env=env, log_path=log) as hark:
        yield hark


class Speech(MediaStreamTrack):
    """A microphone: ``pcm`` (48 kHz mono PCM16) then silence, 20 ms a frame in real time."""

    kind = "audio"

    def __init__(self, pcm: bytes) -> None:
        super().__init__()
        self.pcm = pcm
        self.sent = 0
        self.start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        wait = self.start + self.sent / RATE - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = self.pcm[self.sent * 2 : (self.sent + FRAME) * 2]
        chunk += bytes(FRAME * 2 - len(chunk))
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(chunk)
        frame.pts, frame.sample_rate, frame.time_base = self.sent, RATE, fractions.Fraction(1, RATE)
        self.sent += FRAME
        return frame


class Peer:
    """One aiortc client: its events from the data channel, the reply's energy from its track."""

    def __init__(self, speech: bytes = b"") -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        self.loud_frames = 0
        self.pc.addTrack(Speech(speech))
        self.channel = self.pc.createDataChannel("oai-events")
        self.channel.on("message", lambda m: self.events.put_nowait(json.loads(m)))
        self.pc.on("track", lambda t: asyncio.ensure_future(self._listen(t)))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def _listen(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if np.abs(frame.to_ndarray()).max() > 500:
                    self.loud_frames += 1

    async def next(self, kind: str, timeout_s: float = 60.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self.events.get()
                self.seen.append(event)
                if event["type"] == kind:
                    return event

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post_offer(
    server: HarkProcess,
    body: str | bytes,
    content_type: str = "application/sdp",
    key: str | None = API_KEY,
    query: str = "",
) -> httpx.Response:
    headers = {"Content-Type": content_type, **(auth(key) if key else {})}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return await client.post(CALLS + query, content=body, headers=headers)


@contextlib.asynccontextmanager
async def call(
    server: HarkProcess, speech: bytes = b"", key: str = API_KEY, query: str = ""
) -> AsyncIterator[tuple[Peer, str]]:
    peer = Peer(speech)
    try:
        response = await post_offer(server, await peer.offer(), key=key, query=query)
        assert response.status_code == 201, response.text
        assert response.headers["content-type"].startswith("application/sdp")
        call_id = response.headers["location"].rsplit("/", 1)[1]
        assert response.headers["location"] == f"{CALLS}/{call_id}"
        await peer.answer(response.text)
        yield peer, call_id
    finally:
        await peer.pc.close()


async def sessions_active(server: HarkProcess) -> float:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        text = (await client.get("/metrics", headers=auth())).text
    match = re.search(r'^hark_sessions_active\{transport="webrtc"\} (\S+)$', text, re.M)
    assert match, "no webrtc sessions gauge"
    return float(match.group(1))


async def until_no_sessions(server: HarkProcess, timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while await sessions_active(server) != 0:
            await asyncio.sleep(0.1)


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert {"message", "type", "code"} <= set(error)
    return error


async def test_a_call_hears_answers_and_hangs_up(server: HarkProcess) -> None:
    speech = silence(300, RATE) + speak("What is the weather like today?", rate=RATE) + silence(1500, RATE)
    async with call(server, speech) as (peer, call_id):
        created = await peer.next("session.created", 20)
        assert created["session"]["type"] == "realtime"
        transcript = await peer.next("conversation.item.input_audio_transcription.completed")
        assert "weather" in transcript["transcript"].lower()
        started = await peer.next("output_audio_buffer.started")
        stopped = await peer.next("output_audio_buffer.stopped")
        assert stopped["response_id"] == started["response_id"]
        assert peer.loud_frames > 10
        assert not [e for e in peer.seen if e["type"] == "response.output_audio.delta"]
        assert await sessions_active(server) == 1
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            other = await client.post(f"{CALLS}/rtc_nope/hangup", headers=auth())
            assert other.status_code == 404
            hung = await client.post(f"{CALLS}/{call_id}/hangup", headers=auth())
            assert hung.status_code == 200
    await until_no_sessions(server)


PCM_24K = {"type": "audio/pcm", "rate": 24000}
# What hark's client kit sends first on every connection, WebRTC included.
KIT_SESSION_UPDATE = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {
            "input": {"format": PCM_24K, "turn_detection": {"type": "server_vad"}},
            "output": {"format": PCM_24K},
        },
    },
}


async def test_hark_events_are_opt_in_and_the_kits_session_update_is_accepted(server: HarkProcess) -> None:
    async with call(server, query="?hark_events=1") as (peer, _):
        await peer.next("session.created", 20)
        status = await peer.next("hark.llm_status", 10)
        assert status["mode"] == "echo"
        peer.send(KIT_SESSION_UPDATE)
        await peer.next("session.updated", 10)
        assert not [e for e in peer.seen if e["type"] == "error"], peer.seen
    async with call(server) as (peer, _):
        await peer.next("session.created", 20)
        peer.send(KIT_SESSION_UPDATE)
        await peer.next("session.updated", 10)
        assert not [e for e in peer.seen if e["type"].startswith("hark.") or e["type"] == "error"], peer.seen
    await until_no_sessions(server)


async def test_malformed_offers_are_400(server: HarkProcess) -> None:
    no_audio = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    no_audio.createDataChannel("oai-events")
    await no_audio.setLocalDescription(await no_audio.createOffer())
    data_only = no_audio.localDescription.sdp
    await no_audio.close()
    cases = [
        "",
        "hello",
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
        data_only,
        "v=0\r\n" + "a=x\r\n" * 20_000,
    ]
    for body in cases:
        response = await post_offer(server, body)
        assert response.status_code == 400, (body[:40], response.text)
        assert error_of(response)["type"] == "invalid_request_error"
    peer = Peer()
    broken = (await peer.offer()).replace("a=fingerprint:", "a=fingerprint:sha-256 zz")
    await peer.pc.close()
    assert (await post_offer(server, broken)).status_code == 400
    await until_no_sessions(server)


async def test_wrong_content_types_are_415_and_foreign_origins_403(server: HarkProcess) -> None:
    peer = Peer()
    offer = await peer.offer()
    await peer.pc.close()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        headers = {"Content-Type": "application/sdp", "Origin": "https://evil.example", **auth()}
        foreign = await client.post(CALLS, content=offer, headers=headers)
    assert foreign.status_code == 403, foreign.text
    assert error_of(foreign)["code"] == "origin_not_allowed"
    for content_type in ("text/plain", "application/json", "application/x-www-form-urlencoded"):
        response = await post_offer(server, offer, content_type)
        assert response.status_code == 415, response.text
        assert error_of(response)["code"] == "unsupported_content_type"


async def test_tokens_missing_wrong_and_reused(server: HarkProcess) -> None:
    peer = Peer()
    offer = await peer.offer()
    assert (await post_offer(server, offer, key=None)).status_code == 401
    assert (await post_offer(server, offer, key="sk-wrong")).status_code == 401
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        minted = await client.post("/v1/realtime/client_secrets", headers=auth(), json={})
    assert minted.status_code == 200, minted.text
    secret = minted.json()["value"]
    first = await post_offer(server, offer, key=secret)
    assert first.status_code == 201, first.text
    await peer.answer(first.text)
    again = Peer()
    second = await post_offer(server, await again.offer(), key=secret)
    assert second.status_code == 401, second.text
    await again.pc.close()
    await peer.pc.close()
    await until_no_sessions(server)


async def test_multipart_offer_with_session(server: HarkProcess) -> None:
    peer = Peer()
    session = {"type": "realtime", "instructions": "Answer in one word."}
    files = {"sdp": (None, await peer.offer()), "session": (None, json.dumps(session))}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        response = await client.post(CALLS, files=files, headers=auth())
        assert response.status_code == 201, response.text
        await peer.answer(response.text)
        created = await peer.next("session.created", 20)
        assert created["session"]["instructions"] == "Answer in one word."
        bad = Peer()
        files = {"sdp": (None, await bad.offer()), "session": (None, "{not json")}
        refused = await client.post(CALLS, files=files, headers=auth())
        assert refused.status_code == 400
        await bad.pc.close()
    await peer.pc.close()
    await until_no_sessions(server)


async def test_session_cap_and_a_peer_that_never_connects(server: HarkProcess) -> None:
    # Two offers whose answers are never applied: they hold the two slots, then time out.
    held = [Peer(), Peer()]
    for peer in held:
        assert (await post_offer(server, await peer.offer())).status_code == 201
    over = Peer()
    refused = await post_offer(server, await over.offer())
    assert refused.status_code == 503, refused.text
    assert error_of(refused)["code"] == "server_busy"
    await until_no_sessions(server)  # hung up after connect_timeout_s (2 s here)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        text = (await client.get("/metrics", headers=auth())).text
    assert re.search(r'^hark_webrtc_setup_failed_total\{reason="connect_timeout"\} [1-9]', text, re.M)
    for peer in [*held, over]:
        await peer.pc.close()


async def test_dropped_peer_frees_everything_and_sideband_watches(server: HarkProcess) -> None:
    async with call(server) as (peer, call_id):
        await peer.next("session.created", 20)
        url = server.base_url.replace("http", "ws") + f"/v1/realtime?call_id={call_id}"
        async with websockets.connect(url, additional_headers=auth()) as sideband:
            sideband_update = {
                "type": "session.update",
                "session": {"type": "realtime", "instructions": "Be brief."},
            }
            await sideband.send(json.dumps(sideband_update))
            updated = await peer.next("session.updated", 10)  # steered from the side, seen by the peer
            assert updated["session"]["instructions"] == "Be brief."
            seen = json.loads(await asyncio.wait_for(sideband.recv(), 10))
            assert seen["type"] == "session.updated"
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(url.replace(call_id, "rtc_unknown"), additional_headers=auth()):
                pass
    # The peer closed without a hang-up: the server notices and frees the call.
    await until_no_sessions(server)
