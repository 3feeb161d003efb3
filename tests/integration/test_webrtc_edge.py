"""A call has a WebSocket session's limits (docs/protocol.md "WebRTC", Limits), against a real
``hark serve`` that offers loopback candidates only (``webrtc.loopback_candidates: only``): a
call from an allowed Origin connects over loopback alone, is hung up when idle with the reason
on its data channel, and offers over the rate limit are refused 429 from the budget WebSocket
upgrades spend."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.servers import HarkProcess

pytest.importorskip("aiortc")

from tests import webrtc_client as rtc
from tests.webrtc_client import Peer, error_of

pytestmark = pytest.mark.slow

KEY = "sk-hark-edge-tests-0123456789"
RATE_KEY = "sk-hark-edge-rate-0123456789"
APP_ORIGIN = "https://app.example"
PER_MINUTE = 30
IDLE_S = 3


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HarkProcess]:
    env = {
        "HARK_SECURITY_API_KEYS": json.dumps([KEY, RATE_KEY]),
        "HARK_SECURITY_ALLOWED_ORIGINS": json.dumps([APP_ORIGIN]),
        "HARK_SECURITY_RATE_LIMIT_PER_MINUTE": str(PER_MINUTE),
        "HARK_SECURITY_IDLE_TIMEOUT_S": str(IDLE_S),
        "HARK_WEBRTC_LOOPBACK_CANDIDATES": "only",
        "HARK_TTS_NOISE_W_SCALE": "0",
    }
    log = tmp_path_factory.mktemp("hark-webrtc-edge") / "server.log"
    with HarkProcess(env=env, log_path=log) as hark:
        yield hark


def hosts_of(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


async def test_a_loopback_call_from_an_allowed_origin_is_hung_up_when_idle(edge: HarkProcess) -> None:
    peer = Peer(loopback_only=True)
    origin = {"Origin": APP_ORIGIN}
    async with rtc.call(edge.base_url, peer, KEY, "?hark_events=1", origin) as (peer, _):
        answer = peer.pc.remoteDescription.sdp
        assert hosts_of(answer) and hosts_of(answer) <= {"127.0.0.1", "::1"}, answer
        await peer.next("session.created", 20)  # connected, over loopback alone
        # The microphone sends silence and the client no event: after IDLE_S the call ends, and
        # the client is told why, as a WebSocket's close frame would tell it.
        closing = await peer.next("hark.closing", IDLE_S + 15)
        assert (closing["code"], closing["reason"]) == (1000, "idle timeout")
        await asyncio.wait_for(peer.channel_closed.wait(), 10)
    await rtc.until_no_sessions(edge.base_url, KEY, interval_s=0.5)
    async with httpx.AsyncClient(base_url=edge.base_url) as client:
        text = (await client.get("/metrics", headers=rtc.auth(KEY))).text
    assert re.search(r'^hark_sessions_closed_total\{reason="idle",transport="webrtc"\} 1', text, re.M), text


async def test_offers_over_the_rate_limit_are_429_from_the_websockets_budget(edge: HarkProcess) -> None:
    # From an address of its own, with a key of its own: the other test's requests do not count.
    address = "127.0.0.2"
    statuses: list[int] = []
    async with asyncio.timeout(30):
        while len(statuses) < 3 * PER_MINUTE:
            response = await rtc.post_offer(edge.base_url, "v=0\r\n", key=RATE_KEY, local_address=address)
            statuses.append(response.status_code)
            if response.status_code != 400:
                break
    print(f"\n{statuses.count(400)} offers answered (400: not an offer) before {statuses[-1]}")
    assert statuses[-1] == 429 and statuses.count(400) >= PER_MINUTE, statuses
    error = error_of(response)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert int(response.headers["retry-after"]) >= 1
    # A WebSocket upgrade from that address draws on the same budget.
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            edge.ws_url, additional_headers=rtc.auth(RATE_KEY), local_addr=(address, 0)
        ):
            pass
    assert refused.value.response.status_code == 429
    # So does the key, from any address: within two offers it is refused for the key.
    for _ in range(2):
        other = await rtc.post_offer(edge.base_url, "v=0\r\n", key=RATE_KEY, local_address="127.0.0.3")
        if other.status_code == 429:
            break
    assert other.status_code == 429 and "key" in error_of(other)["message"], other.text
