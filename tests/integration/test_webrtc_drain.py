"""SIGTERM with WebRTC calls open drains them as it drains WebSockets: /ready turns 503, new
calls are refused, the reply in progress plays to its end, then the call is told why and hung
up (one still connecting, at once), and the process exits within its stop budget
(``hark.drain.stop_within_s``)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from hark.drain import stop_within_s
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer

pytest.importorskip("aiortc")

from tests import webrtc_client as rtc
from tests.webrtc_client import Peer, error_of

pytestmark = pytest.mark.slow

DRAIN_S = 10
REPLY = "This reply is still playing when the server is asked to stop. It plays to its end."


async def test_sigterm_lets_the_reply_play_out_then_hangs_up_the_call(
    fake_llm: tuple[FakeChatLLM, ThreadedServer], tmp_path: Path
) -> None:
    llm, llm_server = fake_llm
    llm.reply, llm.token_delay = REPLY, 0.01
    env = {
        "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
        "HARK_LLM_MODEL": "stand-in",
        "HARK_LLM_TIMEOUT": "5",
        "HARK_SECURITY_DRAIN_TIMEOUT_S": str(DRAIN_S),
        # Longer than the drain: a call still connecting must not hold the exit up until then.
        "HARK_WEBRTC_CONNECT_TIMEOUT_S": "60",
        "HARK_TTS_NOISE_W_SCALE": "0",
    }
    server = HarkProcess(env=env, log_path=tmp_path / "server.log")
    with server:
        assert server.process is not None
        async with rtc.call(server.base_url, Peer(), query="?hark_events=1") as (peer, _):
            await peer.next("session.created", 20)
            # A second call whose answer is never applied: it is still connecting at SIGTERM.
            held = Peer()
            assert (await rtc.post_offer(server.base_url, await held.offer())).status_code == 201
            peer.send({"type": "response.create"})
            started = await peer.next("output_audio_buffer.started", 30)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                ready = await client.get("/ready")
            assert ready.status_code == 503 and ready.json()["checks"]["accepting"] is False
            late = Peer()
            refused = await rtc.post_offer(server.base_url, await late.offer())
            await late.pc.close()
            assert refused.status_code == 503 and error_of(refused)["code"] == "server_busy"
            stopped = await peer.next("output_audio_buffer.stopped", DRAIN_S)
            assert stopped["response_id"] == started["response_id"]
            closing = await peer.next("hark.closing", DRAIN_S)
            assert closing["code"] == 1001, closing
            kinds = [e["type"] for e in peer.seen]
            assert "output_audio_buffer.cleared" not in kinds, kinds
            await asyncio.wait_for(peer.channel_closed.wait(), DRAIN_S)
            hung_up = time.monotonic() - signalled
            exit_code = await asyncio.to_thread(server.process.wait, stop_within_s(DRAIN_S))
        took = time.monotonic() - signalled
        print(f"\ncall hung up {hung_up:.1f} s after SIGTERM; process exited {exit_code} after {took:.1f} s")
        assert exit_code == 0
        assert peer.loud_frames > 10  # the reply was heard
        await held.pc.close()
