"""The voice loop end to end: a real hark process, the real local models, the official SDK."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from tests.realtime_client import realtime, send_audio
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

QUESTION = "What is the weather like in Paris today?"


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


async def test_speech_is_transcribed_and_answered_in_labelled_echo_mode(hark_server: HarkProcess) -> None:
    async with realtime(hark_server.base_url) as (conn, rec):
        status = await rec.wait_for("hark.llm_status")
        assert status.mode == "echo"
        assert "HARK_LLM_BASE_URL" in status.setting
        await send_audio(conn, silence(300) + speak(QUESTION) + silence(1200))
        final = await rec.wait_for("conversation.item.input_audio_transcription.completed")
        assert {"weather", "paris"} <= words(final.transcript)
        done = await rec.wait_for("response.done")
        assert done.response.status == "completed"
        transcript = done.response.output[0].content[0].transcript
        assert transcript.startswith("Echo mode.")
        assert "paris" in words(transcript)
        # Reply audio arrived in many small chunks, not one blob per reply.
        deltas = rec.of("response.output_audio.delta")
        assert len(deltas) >= 10
        seconds = len(rec.audio) / 2 / 24_000
        assert 1.5 < seconds < 15
        assert len(rec.audio) % 2 == 0
        # The state machine was reported, and latency figures came with the turn.
        states = [e.state for e in rec.of("hark.state")]
        assert states[:4] == ["listening", "thinking", "speaking", "idle"]
        latency = await rec.wait_for("hark.latency")
        assert latency.voice_to_voice_ms is not None and latency.voice_to_voice_ms > 0
        assert latency.stt_ms is not None and latency.tts_ttfb_ms is not None
        # Partial transcripts arrived while the user was still speaking.
        partial_times = rec.times("conversation.item.input_audio_transcription.delta")
        stopped_at = rec.times("input_audio_buffer.speech_stopped")[0]
        assert partial_times and partial_times[0] < stopped_at


async def test_reply_text_comes_from_the_llm(
    hark_with_llm: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    llm.reply = "Paris is sunny and mild today. You will not need an umbrella."
    llm.token_delay = 0.01
    before = len(llm.requests)
    async with realtime(hark_with_llm.base_url) as (conn, rec):
        status = await rec.wait_for("hark.llm_status")
        assert status.mode == "llm"
        await send_audio(conn, silence(300) + speak(QUESTION) + silence(1200))
        done = await rec.wait_for("response.done", timeout=40)
    assert done.response.status == "completed"
    spoken = done.response.output[0].content[0].transcript
    assert spoken == llm.reply
    deltas = "".join(e.delta for e in rec.of("response.output_audio_transcript.delta"))
    assert deltas == llm.reply
    request = llm.requests[before]
    assert request["auth"] == "Bearer sk-test-secret-123"
    messages = request["body"]["messages"]
    assert messages[0]["role"] == "system"
    assert messages[-1]["role"] == "user" and {"weather", "paris"} <= words(messages[-1]["content"])
    assert request["body"]["stream"] is True
    assert len(rec.audio) / 2 / 24_000 > 2.0


async def test_barge_in_stops_reply_audio_and_keeps_only_heard_words(
    hark_with_llm: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    llm.reply = (
        "Here is a long answer about the weather in Paris. The morning starts cool and grey. "
        "By noon the clouds lift and the sun comes out over the river. In the afternoon it is warm "
        "enough for a walk along the quays. The evening stays mild and dry, perfect for dinner outside."
    )
    llm.token_delay = 0.005
    async with realtime(hark_with_llm.base_url) as (conn, rec):
        await send_audio(conn, silence(300) + speak(QUESTION) + silence(900))
        first_audio = await rec.wait_for("response.output_audio.delta", timeout=40)
        response_id = first_audio.response_id
        # Let about 1.5 s of the reply play, then interrupt, keeping silence flowing like a live mic.
        await send_audio(conn, silence(1500))
        mark = rec.mark()
        requests_at_mark = len(llm.requests)
        # One breath: espeak-ng's "Stop, stop." ends in 430 ms of silence, a turn of its own, which
        # the (speculative) reply would answer audibly before the rest came.
        interrupt = speak("Stop and tell me about London instead.")
        interrupted_at = await send_audio(conn, interrupt + silence(900))
        done = await rec.wait_for("response.done", lambda e: e.response.id == response_id)
        assert done.response.status == "cancelled"
        assert done.response.status_details.reason == "turn_detected"
        await rec.wait_for("input_audio_buffer.speech_started", after=mark)
        reply_audio = [
            r.at
            for r in rec.events
            if r.type == "response.output_audio.delta" and r.event.response_id == response_id
        ]
        stopped_after = reply_audio[-1] - interrupted_at
        print(
            f"\nbarge-in: last reply audio {stopped_after * 1000:.0f} ms after the interrupting speech began"
        )
        assert stopped_after <= 0.300
        heard = done.response.output[0].content[0].transcript.split()
        assert heard, "about 1.5 s of the reply played, so some words were heard"
        assert llm.reply.split()[: len(heard)] == heard
        assert len(heard) < len(llm.reply.split()) / 2
        # The next request to the LLM carries only what the user heard.
        await rec.wait_for("response.created", after=mark, timeout=40)
        deadline = time.monotonic() + 10
        while len(llm.requests) <= requests_at_mark and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    history = llm.requests[-1]["body"]["messages"]
    assistant = [m["content"] for m in history if m["role"] == "assistant"]
    assert assistant == [" ".join(heard)]
    assert "London" in history[-1]["content"] or "london" in words(history[-1]["content"])


async def test_health_answers_quickly_during_a_long_transcription(hark_server: HarkProcess) -> None:
    import httpx

    sentences = [
        "What is the weather like in Paris today?",
        "Please call my mother tomorrow morning.",
        "My favourite colour is blue.",
        "Can you tell me a story about a dragon?",
        "I would like a cup of coffee with milk.",
        "The library opens every day at noon.",
    ]
    long_speech = b"".join(speak(sentence) + silence(400) for sentence in sentences)
    assert len(long_speech) / 2 / 24_000 > 12
    async with (
        realtime(hark_server.base_url, audio={"input": {"turn_detection": None}}) as (conn, rec),
        httpx.AsyncClient(base_url=hark_server.base_url) as http,
    ):
        # Connect first: the probe measures the server's answer, not this client's TCP set-up.
        assert (await http.get("/health")).status_code == 200
        await send_audio(conn, long_speech, realtime_pace=False)
        await conn.input_audio_buffer.commit()
        await rec.wait_for("input_audio_buffer.committed")
        timings = []
        while not rec.of("conversation.item.input_audio_transcription.completed"):
            started = time.monotonic()
            response = await http.get("/health")
            timings.append(time.monotonic() - started)
            assert response.status_code == 200
            await asyncio.sleep(0.05)
        final = rec.of("conversation.item.input_audio_transcription.completed")[0]
    assert {"mother", "dragon", "paris"} <= words(final.transcript)
    assert len(timings) >= 3, "the transcription finished before /health could be probed"
    print(f"\n/health during transcription: max {max(timings) * 1000:.1f} ms over {len(timings)} probes")
    assert max(timings) < 0.100


async def test_unreachable_llm_says_so_and_echoes(tmp_path: object) -> None:
    from tests.servers import free_port

    env = {"HARK_LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "HARK_LLM_TIMEOUT": "2"}
    with HarkProcess(env=env) as server:
        async with realtime(server.base_url) as (conn, rec):
            status = await rec.wait_for("hark.llm_status")
            assert status.mode == "echo" and "not reachable" in status.message
            await send_audio(conn, silence(300) + speak(QUESTION) + silence(1200))
            done = await rec.wait_for("response.done", timeout=40)
    transcript = done.response.output[0].content[0].transcript
    assert transcript.startswith("Echo mode: I cannot reach the language model")
    assert "paris" in words(transcript)
