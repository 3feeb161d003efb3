"""Echo on a phone call: a speakerphone leaks what the caller hears back into the microphone
at -12 dB, 80-100 ms later. With echo cancellation on (``audio.echo_cancellation``), hark does
not take its own greeting, nor the answer after the caller's question, for the caller barging in,
and still hears the caller."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hark.transports.twilio import mulaw
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer
from tests.speech import silence, speak
from tests.twilio_client import incoming_call, new_call_sid, parse_twiml, phone_call

pytestmark = pytest.mark.slow

AUTH_TOKEN = "twilio-auth-token-for-echo-tests"
PUBLIC_URL = "https://voice.example.test"
GREETING = (
    "Hello, and thank you for calling. I can tell you about the weather, your appointments "
    "and your messages. What would you like to know?"
)
RATE = mulaw.RATE


@pytest.fixture(scope="module")
def echo_server(
    fake_llm: tuple[FakeChatLLM, ThreadedServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HarkProcess]:
    _, llm_server = fake_llm
    env = {
        "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
        "HARK_LLM_MODEL": "stand-in",
        "HARK_LLM_TIMEOUT": "5",
        "HARK_TWILIO_ENABLED": "true",
        "HARK_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "HARK_TWILIO_PUBLIC_URL": PUBLIC_URL,
        "HARK_TWILIO_GREETING": GREETING,
        "HARK_AUDIO_ECHO_CANCELLATION": "on",
        "HARK_WORKERS_ENABLED": "false",  # one call: the engines in process start sooner
    }
    log = tmp_path_factory.mktemp("hark-echo-phone") / "server.log"
    with HarkProcess(env=env, log_path=log) as server:
        yield server


async def test_hark_does_not_barge_in_on_its_own_voice_and_still_hears_the_caller(
    echo_server: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    llm.reply = "It will be sunny all day."
    llm.token_delay = 0.01
    before = len(llm.requests)
    call_sid = new_call_sid()
    response = await incoming_call(
        echo_server.base_url, auth_token=AUTH_TOKEN, public_url=PUBLIC_URL, call_sid=call_sid
    )
    parameters = parse_twiml(response.text).parameters
    url = f"ws://127.0.0.1:{echo_server.port}/twilio/stream"
    async with phone_call(url, call_sid, parameters, leak_db=-12) as (call, _started):
        await call.wait_for("media", timeout=20)
        await call.wait_quiet(1.5, min_played_s=1.0)
        # The whole greeting played (6.4 s), its echo in the microphone all along: no barge-in,
        # no turn.
        assert not call.of("clear")
        assert len(call.played) / RATE > 5.0
        assert len(llm.requests) == before
        # The caller, talking with the line still leaking, is heard and answered.
        question = speak("What is the weather like today?", rate=RATE) + silence(100, RATE)
        _, speech_end = await call.say(question)
        await call.wait_for("media", after=speech_end, timeout=40)
        greeting_s = len(call.played) / RATE
        # The answer plays to its end, its echo leaking too: it does not interrupt itself either
        # (its echo came at another delay than the greeting's; AEC3 starts afresh per reply).
        await call.wait_quiet(1.5, min_played_s=greeting_s + 0.5)
        assert not call.of("clear")
    assert len(llm.requests) >= before + 1
    # The first request may be a reply prepared at a pause inside the question ("What?"), dropped.
    asked = [r["body"]["messages"][-1]["content"].lower() for r in llm.requests[before:]]
    assert any("weather" in text for text in asked), asked
