"""The WebRTC edge against a real ``hark serve`` (real local models, echo mode, API keys on),
from a Python aiortc peer: offers in every wrong shape, content types, tokens missing or
reused, the session cap, hang-up, a peer that never connects, and the sideband WebSocket.
After each, nothing is left: the sessions gauge is back to 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import websockets

from tests.servers import HarkProcess
from tests.speech import silence, speak

aiortc = pytest.importorskip("aiortc")
from aiortc import RTCConfiguration, RTCPeerConnection  # noqa: E402

from tests import webrtc_client as rtc  # noqa: E402
from tests.webrtc_client import CALLS, Peer, error_of  # noqa: E402

pytestmark = pytest.mark.slow

API_KEY = "sk-hark-webrtc-tests-0123456789"
RATE = rtc.RATE


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


def auth(key: str = API_KEY) -> dict[str, str]:
    return rtc.auth(key)


async def post_offer(
    server: HarkProcess,
    body: str | bytes,
    content_type: str = "application/sdp",
    key: str | None = API_KEY,
    query: str = "",
) -> httpx.Response:
    return await rtc.post_offer(server.base_url, body, content_type, key, query)


@contextlib.asynccontextmanager
async def call(
    server: HarkProcess, speech: bytes = b"", key: str = API_KEY, query: str = ""
) -> AsyncIterator[tuple[Peer, str]]:
    async with rtc.call(server.base_url, Peer(speech), key, query) as (peer, call_id):
        yield peer, call_id


async def sessions_active(server: HarkProcess) -> float:
    return await rtc.sessions_active(server.base_url, API_KEY)


async def until_no_sessions(server: HarkProcess, timeout_s: float = 15.0) -> None:
    await rtc.until_no_sessions(server.base_url, API_KEY, timeout_s)


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


async def test_calls_speak_opus_whatever_the_offer_prefers(server: HarkProcess) -> None:
    """An offer without Opus is refused with a clear error; one that lists G.711 before Opus
    is answered with Opus alone, and the caller is heard (a G.711 caller was once read at the
    wrong rate, and sent Opus packets it could not decode)."""
    g711 = Peer(codecs=("audio/PCMU", "audio/PCMA"))
    offer = await g711.offer()
    await g711.pc.close()
    assert "opus/48000" not in offer.lower()
    refused = await post_offer(server, offer)
    assert refused.status_code == 400, refused.text
    assert error_of(refused)["code"] == "unsupported_codec"
    assert "opus" in error_of(refused)["message"].lower()

    speech = silence(300, RATE) + speak("What is the weather like today?", rate=RATE) + silence(1500, RATE)
    peer = Peer(speech, codecs=("audio/PCMU", "audio/opus"))
    async with rtc.call(server.base_url, peer, API_KEY) as (peer, _call_id):
        answer = peer.pc.remoteDescription.sdp.lower()
        assert "opus/48000" in answer
        assert "pcmu" not in answer and "pcma" not in answer and "g722" not in answer
        transcript = await peer.next("conversation.item.input_audio_transcription.completed")
        assert "weather" in transcript["transcript"].lower()
        await peer.next("output_audio_buffer.stopped")
        assert peer.loud_frames > 10
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
