"""Echo on a WebRTC call: the caller's speaker leaks the reply back into its microphone at
-12 dB, 80 ms later (plus the network's own delay). With ``audio.echo_cancellation: on`` the
frames hark's track handed to the encoder are the canceller's reference: hark does not take its
own reply for the caller barging in, and still hears the caller."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer
from tests.speech import silence, speak

pytest.importorskip("aiortc")

from tests import webrtc_client as rtc
from tests.webrtc_client import Peer, Room

pytestmark = pytest.mark.slow

RATE = rtc.RATE
REPLY = (
    "Hello, and thank you for calling. I can tell you about the weather, your appointments "
    "and your messages. What would you like to know?"
)


@pytest.fixture(scope="module")
def echo_server(
    fake_llm: tuple[FakeChatLLM, ThreadedServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HarkProcess]:
    _, llm_server = fake_llm
    env = {
        "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
        "HARK_LLM_MODEL": "stand-in",
        "HARK_LLM_TIMEOUT": "5",
        "HARK_AUDIO_ECHO_CANCELLATION": "on",
        "HARK_TTS_PIPER_NOISE_W_SCALE": "0",
        "HARK_WORKERS_ENABLED": "false",  # one call: the engines in process start sooner
    }
    log = tmp_path_factory.mktemp("hark-echo-webrtc") / "server.log"
    with HarkProcess(env=env, log_path=log) as server:
        yield server


async def test_a_call_does_not_interrupt_itself_and_still_hears_the_caller(
    echo_server: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    llm.reply, llm.token_delay = REPLY, 0.01
    before = len(llm.requests)
    peer = Peer(room=Room(gain_db=-12, delay_ms=80))
    async with rtc.call(echo_server.base_url, peer, query="?hark_events=1") as (peer, _):
        await peer.next("session.created", 20)
        peer.send({"type": "response.create"})
        started = await peer.next("output_audio_buffer.started", 30)
        # The whole reply plays, its echo in the microphone all along: no barge-in, no turn.
        stopped = await peer.next("output_audio_buffer.stopped", 60)
        assert stopped["response_id"] == started["response_id"]
        kinds = [e["type"] for e in peer.seen]
        assert "output_audio_buffer.cleared" not in kinds, kinds
        assert kinds.count("response.created") == 1, kinds
        assert len(llm.requests) == before + 1
        # Not asserted: that no speech starts at all. In 2 runs of 9 the reply's first few
        # hundred ms got through while AEC3 was still learning the room; the speech was judged
        # the reply's own (hark.speech_ignored, self_speech) and the reply went on. With the
        # canceller off, the reply was cut and its echo answered in both runs tried.
        ignored = [e for e in peer.seen if e["type"] == "hark.speech_ignored"]
        assert kinds.count("input_audio_buffer.speech_started") == len(ignored), kinds
        assert peer.loud_frames > 100  # more than 2 s of the reply reached the speaker
        # The caller, talking with the speaker still leaking, is heard.
        llm.reply = "It will be sunny all day."
        peer.microphone.say(speak("What is the weather like today?", rate=RATE) + silence(1000, RATE))
        heard = await peer.next("conversation.item.input_audio_transcription.completed", 40)
        assert "weather" in heard["transcript"].lower(), heard
