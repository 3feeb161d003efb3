"""Phone calls end to end: a real hark process, the real local models, and a loopback Twilio
speaking its documented webhook and Media Streams messages (tests/twilio_client.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from hark.transports.twilio import mulaw, signature
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer
from tests.speech import silence, speak, write_wav
from tests.twilio_client import PhoneCall, incoming_call, new_call_sid, parse_twiml, phone_call, start_message

pytestmark = pytest.mark.slow

AUTH_TOKEN = "twilio-auth-token-for-tests"
PUBLIC_URL = "https://voice.example.test"
API_KEY = "sk-hark-phone-tests-0123456789"
GREETING = "Hello! How can I help you?"
QUESTION = "What is the weather like in Paris today?"
RATE = mulaw.RATE


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


@pytest.fixture(scope="module")
def phone_server(
    fake_llm: tuple[FakeChatLLM, ThreadedServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HarkProcess]:
    """hark taking calls behind a (pretend) public URL, with API keys on: the webhook and the
    stream must work without them (Twilio cannot send one) and with Twilio's own checks."""
    _, llm_server = fake_llm
    env = {
        "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
        "HARK_LLM_MODEL": "stand-in",
        "HARK_LLM_TIMEOUT": "5",
        "HARK_SECURITY_API_KEYS": json.dumps([API_KEY]),
        "HARK_TWILIO_ENABLED": "true",
        "HARK_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "HARK_TWILIO_PUBLIC_URL": PUBLIC_URL,
        "HARK_TWILIO_GREETING": GREETING,
        "HARK_TWILIO_DTMF_GAP_MS": "600",
        "HARK_TWILIO_START_TIMEOUT_S": "2",
        "HARK_SECURITY_MAX_SESSIONS": "3",
        "HARK_SECURITY_IDLE_TIMEOUT_S": "3",
    }
    log = tmp_path_factory.mktemp("hark-phone") / "server.log"
    with HarkProcess(env=env, log_path=log) as server:
        yield server


def stream_url(server: HarkProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/twilio/stream"


async def answered_call(server: HarkProcess) -> tuple[str, dict[str, str]]:
    """The webhook, signed as Twilio signs it: (CallSid, the stream's parameters)."""
    call_sid = new_call_sid()
    response = await incoming_call(
        server.base_url, auth_token=AUTH_TOKEN, public_url=PUBLIC_URL, call_sid=call_sid
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    twiml = parse_twiml(response.text)
    assert twiml.stream_url == "wss://voice.example.test/twilio/stream"
    assert set(twiml.parameters) == {"token"}
    return call_sid, twiml.parameters


async def transcribe(server: HarkProcess, ulaw: bytes) -> str:
    """What hark's own speech recognition hears in reply audio that reached the caller."""
    wav = io.BytesIO()
    write_wav(wav, mulaw.decode(ulaw), rate=RATE)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        response = await client.post(
            "/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {API_KEY}"},
            files={"file": ("reply.wav", wav.getvalue(), "audio/wav")},
            data={"model": "whisper-1"},
        )
    assert response.status_code == 200, response.text
    return str(response.json()["text"])


async def greeting(call: PhoneCall, started: float) -> float:
    """Waits for the greeting's first audio; prints and returns its delay after ``start``."""
    first = await call.wait_for("media", timeout=20)
    ms = (first.at - started) * 1000
    print(f"\nphone: greeting first audio {ms:.0f} ms after start")
    return ms


def loudness(ulaw: bytes) -> float:
    pcm = np.frombuffer(mulaw.decode(ulaw), dtype="<i2").astype(np.float32) / 32768.0
    return float(np.sqrt(np.mean(pcm**2))) if pcm.size else 0.0


async def test_a_call_is_greeted_at_once_then_answered_in_speech(
    phone_server: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    llm.reply = "Paris is sunny and mild today. You will not need an umbrella."
    llm.token_delay = 0.01
    before = len(llm.requests)
    call_sid, parameters = await answered_call(phone_server)
    async with phone_call(stream_url(phone_server), call_sid, parameters) as (call, started):
        # The greeting plays before the caller says anything.
        first = await call.wait_for("media", timeout=20)
        greeting_ms = (first.at - started) * 1000
        await call.wait_quiet(1.5, min_played_s=1.2)
        greeting_audio = bytes(call.played)
        assert len(llm.requests) == before, "a fixed greeting needs no LLM"
        # Every media message is 20 ms of μ-law (the last of a sentence may be shorter).
        sizes = [len(base64.b64decode(m.message["media"]["payload"])) for m in call.of("media")]
        assert max(sizes) == mulaw.FRAME_BYTES and sizes.count(mulaw.FRAME_BYTES) >= len(sizes) * 0.9
        assert call.of("mark"), "each reply chunk is followed by a mark"
        # The caller asks a question.
        played_before = len(call.played)
        _, speech_end = await call.say(speak(QUESTION, rate=RATE) + silence(100, rate=RATE))
        reply = await call.wait_for("media", after=speech_end, timeout=40)
        voice_to_voice_ms = (reply.at - speech_end) * 1000
        await call.wait_quiet(3.0, min_played_s=len(call.played) / RATE + 3.0)
        reply_audio = bytes(call.played[played_before:])
    print(
        f"\nphone: greeting first audio {greeting_ms:.0f} ms after start; voice-to-voice "
        f"{voice_to_voice_ms:.0f} ms (end of the caller's speech to the first reply media)"
    )
    # What the caller heard is speech, and says what was meant.
    assert loudness(greeting_audio) > 0.02 and len(greeting_audio) / RATE > 1.0
    assert {"hello", "help"} <= words(await transcribe(phone_server, greeting_audio))
    # Telephone-band audio through tiny.en: most of the words, not all, come back.
    heard = words(await transcribe(phone_server, reply_audio))
    said = words(llm.reply)
    assert len(heard & said) >= len(said) * 0.6, heard
    # The LLM heard the caller, with the greeting before it in the history.
    assert len(llm.requests) > before
    messages = llm.requests[-1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["system", "assistant", "user"]
    assert messages[1]["content"] == GREETING
    assert {"weather", "paris"} <= words(messages[-1]["content"])


async def test_barge_in_clears_twilios_buffer_and_history_keeps_what_was_heard(
    phone_server: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    llm.reply = (
        "Here is a long answer about the weather in Paris. The morning starts cool and grey. "
        "By noon the clouds lift and the sun comes out over the river. In the afternoon it is warm "
        "enough for a walk along the quays. The evening stays mild and dry, perfect for dinner outside."
    )
    llm.token_delay = 0.005
    call_sid, parameters = await answered_call(phone_server)
    async with phone_call(stream_url(phone_server), call_sid, parameters) as (call, started):
        await greeting(call, started)
        await call.wait_quiet(1.5)
        _, speech_end = await call.say(speak(QUESTION, rate=RATE))
        await call.wait_for("media", after=speech_end, timeout=40)
        requests_before = len(llm.requests)
        await asyncio.sleep(1.5)  # about 1.5 s of the reply plays
        interrupt_start, _ = await call.say(speak("Stop and tell me about London instead.", rate=RATE))
        clear = await call.wait_for("clear", after=interrupt_start, timeout=10)
        barge_in_ms = (clear.at - interrupt_start) * 1000
        # Under load the line's 20 ms frames can leave in bursts: also count the speech audio
        # that had been sent when the clear arrived.
        speech_sent_ms = 20 * sum(1 for t in call.speech_times if t < clear.at)
        # The interruption is answered; its request carries only the words the caller heard.
        deadline = time.monotonic() + 40
        while len(llm.requests) <= requests_before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    print(
        f"\nphone barge-in: clear {barge_in_ms:.0f} ms after the interrupting speech began, "
        f"after {speech_sent_ms} ms of its audio"
    )
    assert barge_in_ms < 1500
    history = llm.requests[-1]["body"]["messages"]
    assistant = [m["content"] for m in history if m["role"] == "assistant"]
    assert assistant[0] == GREETING
    heard = assistant[1].split()
    assert heard, "about 1.5 s of the reply played, so some words were heard"
    assert llm.reply.split()[: len(heard)] == heard
    assert len(heard) < len(llm.reply.split()) / 2
    # The interruption is the next user turn. Which of its words tiny.en hears in 8 kHz μ-law
    # varies ("and stop" once, for "Stop and tell me about London instead."), so any will do.
    interruption = {"stop", "tell", "london", "instead"}
    assert history[-1]["role"] == "user" and interruption & words(history[-1]["content"])


async def test_only_audio_twilio_reports_played_counts_as_heard(
    phone_server: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    """A caller whose marks never come back heard nothing, however much audio was sent."""
    llm, _ = fake_llm
    llm.reply = "One two three four five six seven eight nine ten. Eleven twelve thirteen fourteen."
    llm.token_delay = 0.0
    call_sid, parameters = await answered_call(phone_server)
    async with phone_call(stream_url(phone_server), call_sid, parameters, echo_marks=False) as (
        call,
        started,
    ):
        await greeting(call, started)
        await asyncio.sleep(2.5)  # the greeting is sent in full; no mark is echoed
        requests_before = len(llm.requests)
        interrupt_start, _ = await call.say(speak("Please tell me about London.", rate=RATE))
        await call.wait_for("clear", after=interrupt_start, timeout=10)
        deadline = time.monotonic() + 40
        while len(llm.requests) <= requests_before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    history = llm.requests[-1]["body"]["messages"]
    assert [m["role"] for m in history] == ["system", "user"], history


async def test_keypad_digits_reach_the_conversation_as_text(
    phone_server: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    llm.reply = "Thank you, I have your number."
    before = len(llm.requests)
    call_sid, parameters = await answered_call(phone_server)
    async with phone_call(stream_url(phone_server), call_sid, parameters) as (call, started):
        await greeting(call, started)
        await call.wait_quiet(1.5)
        for digit in "42":
            await call.dtmf(digit)
        pressed = time.monotonic()
        await call.wait_for("media", after=pressed, timeout=30)
        # Keys pressed over the reply cut it short, like speech.
        await call.dtmf("7")
        pressed = time.monotonic()
        await call.dtmf("#")  # ends an entry at once
        await call.wait_for("clear", after=pressed, timeout=10)
        deadline = time.monotonic() + 30
        while len(llm.requests) < before + 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    messages = llm.requests[-1]["body"]["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["[keypad] 42", "[keypad] 7"]
    assert messages[-1] == {"role": "user", "content": "[keypad] 7"}


async def test_forged_webhooks_are_refused(phone_server: HarkProcess) -> None:
    base = phone_server.base_url
    signed_for_hark = await incoming_call(base, auth_token=AUTH_TOKEN)  # not the public URL
    wrong_token = await incoming_call(base, auth_token="another-account-token", public_url=PUBLIC_URL)
    unsigned = await incoming_call(base, auth_token=None, public_url=PUBLIC_URL)
    garbage = await incoming_call(base, auth_token=None, signature_override="0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert [r.status_code for r in (signed_for_hark, wrong_token, unsigned, garbage)] == [403, 403, 403, 403]
    assert "Stream" not in signed_for_hark.text
    # Tampered after signing: the signature covered other parameters.
    params = {"CallSid": new_call_sid(), "From": "+15005550006"}
    sig = signature.compute(AUTH_TOKEN, PUBLIC_URL + "/twilio/voice", params.items())
    async with httpx.AsyncClient(base_url=base) as client:
        tampered = await client.post(
            "/twilio/voice", data={**params, "From": "+15005550009"}, headers={"X-Twilio-Signature": sig}
        )
        good = await client.post("/twilio/voice", data=params, headers={"X-Twilio-Signature": sig})
        no_sid_params = {"From": "+15005550006"}
        no_sid = await client.post(
            "/twilio/voice",
            data=no_sid_params,
            headers={
                "X-Twilio-Signature": signature.compute(
                    AUTH_TOKEN, PUBLIC_URL + "/twilio/voice", no_sid_params.items()
                )
            },
        )
        huge = await client.post("/twilio/voice", content=b"a=" + b"x" * 100_000)
    assert (tampered.status_code, good.status_code, no_sid.status_code, huge.status_code) == (
        403,
        200,
        400,
        413,
    )


async def refused(server: HarkProcess, messages: list[str]) -> tuple[int | None, list[str]]:
    """Send ``messages`` on a fresh stream socket; (close code, events received)."""
    received: list[str] = []
    async with websockets.connect(stream_url(server)) as ws:
        for message in messages:
            await ws.send(message)
        try:
            async with asyncio.timeout(5):
                async for text in ws:
                    received.append(json.loads(text)["event"])
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, received


async def test_stream_sockets_without_a_valid_single_use_token_are_closed_before_a_session(
    phone_server: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    connected = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    call_sid, parameters = await answered_call(phone_server)
    _, other_parameters = await answered_call(phone_server)
    before = len(llm.requests)

    def start(sid: str, params: dict[str, str]) -> str:
        return json.dumps(start_message("MZ" + "1" * 32, sid, params))

    t0 = time.monotonic()
    cases = {
        "no token": await refused(phone_server, [connected, start(call_sid, {})]),
        "forged token": await refused(phone_server, [connected, start(call_sid, {"token": "a.b.c"})]),
        "token of another call": await refused(phone_server, [connected, start(call_sid, other_parameters)]),
        "media before start": await refused(
            phone_server, [connected, json.dumps({"event": "media", "media": {"payload": ""}})]
        ),
        "not json": await refused(phone_server, ["hello"]),
        "nothing sent (start timeout)": await refused(phone_server, []),
    }
    # The genuine token opens one call, once.
    async with phone_call(stream_url(phone_server), call_sid, parameters) as (call, started):
        await greeting(call, started)
    cases["reused token"] = await refused(phone_server, [connected, start(call_sid, parameters)])
    print(
        f"\nrefusals took {time.monotonic() - t0:.1f} s: "
        + ", ".join(f"{k}: {v[0]}" for k, v in cases.items())
    )
    for name, (code, events) in cases.items():
        assert events == [], name
        assert code in (4001, 1008), (name, code)
    assert cases["reused token"][0] == 4001 and cases["no token"][0] == 4001
    assert len(llm.requests) == before, "no refused socket reached the LLM"


async def test_malformed_messages_are_ignored_and_a_hang_up_mid_reply_frees_the_call(
    phone_server: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    llm.reply = "Sure. " + "This answer goes on and on about the weather. " * 6
    call_sid, parameters = await answered_call(phone_server)
    async with phone_call(stream_url(phone_server), call_sid, parameters) as (call, started):
        await greeting(call, started)
        for bad in (
            "not json",
            "[]",
            '{"event": "hangup"}',
            '{"event": "media", "media": {"payload": "***"}}',
        ):
            await call.ws.send(bad)
        await call.ws.send(b"\x00\x01binary")
        await call.wait_quiet(1.5)
        _, speech_end = await call.say(speak(QUESTION, rate=RATE))
        await call.wait_for("media", after=speech_end, timeout=40)
        await asyncio.sleep(0.5)
        # The caller hangs up in the middle of the reply (the context manager sends stop and closes).
    async with httpx.AsyncClient(base_url=phone_server.base_url) as client:
        deadline = time.monotonic() + 10
        while True:
            metrics = (await client.get("/metrics")).text
            active = re.search(r'hark_sessions_active\{transport="twilio"\} (\S+)', metrics)
            if active is not None and float(active.group(1)) == 0.0:
                break
            assert time.monotonic() < deadline, metrics[-2000:]
            await asyncio.sleep(0.1)
    assert call.close_code is not None


async def test_the_session_cap_covers_calls_and_a_stalled_line_is_closed_idle(
    phone_server: HarkProcess,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        calls = []
        for _ in range(3):  # security.max_sessions
            call_sid, parameters = await answered_call(phone_server)
            call, started = await stack.enter_async_context(
                phone_call(stream_url(phone_server), call_sid, parameters)
            )
            await greeting(call, started)
            calls.append(call)
        # A fourth call is turned away politely by the webhook, and its socket by the guard.
        busy = await incoming_call(phone_server.base_url, auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
        assert busy.status_code == 200 and "<Reject" in busy.text and "<Stream" not in busy.text
        with pytest.raises(InvalidStatus) as refusal:
            async with websockets.connect(stream_url(phone_server)):
                pass
        assert refusal.value.response.status_code == 503
        # One line stops sending (a stalled socket, not a hang-up): closed as idle.
        await calls[0].wait_quiet(0.5)
        calls[0].line_open = False
        silent_at = time.monotonic()
        while calls[0].close_code is None and time.monotonic() - silent_at < 15:
            await asyncio.sleep(0.05)
        idle_s = time.monotonic() - silent_at
        print(f"\nphone: a silent line closed {idle_s:.1f} s after its last media (idle timeout 3 s)")
        assert (calls[0].close_code, calls[0].close_reason) == (1000, "idle timeout")
        assert 2.5 < idle_s < 6
        # Its slot is free again.
        call_sid, parameters = await answered_call(phone_server)
        async with phone_call(stream_url(phone_server), call_sid, parameters) as (call, started):
            await greeting(call, started)
