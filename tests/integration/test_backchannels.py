"""Speech over hark's reply, end to end: a real hark process with the real VAD and tiny.en, the
official SDK, espeak-ng speech. A backchannel pauses the reply and it resumes; real words
cancel it; interrupt_response and create_response behave as OpenAI documents them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hark.pipeline.interruptions import words
from tests.realtime_client import Recorder, send_audio
from tests.realtime_client import realtime as _realtime
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

QUESTION = "What is the weather like in Paris today?"
REPLY = (
    "Here is the weather in Paris for today. The morning starts cool and grey with a light wind. "
    "By noon the clouds lift and the sun comes out over the river."
)


@contextlib.asynccontextmanager
async def realtime(base_url: str, **session: Any) -> AsyncIterator[tuple[Any, Recorder]]:
    """A session, retried after the server's Retry-After when it refuses it as saturated: the
    previous test's transcriptions can keep a loaded 2-core machine's engine queue over the
    admission limit for a few seconds (a refusal is the behaviour under test elsewhere)."""
    from websockets.exceptions import InvalidStatus

    for attempt in range(4):
        try:
            async with _realtime(base_url, **session) as opened:
                yield opened
                return
        except InvalidStatus as exc:
            if exc.response.status_code != 503 or attempt == 3:
                raise
            await asyncio.sleep(float(exc.response.headers.get("retry-after", "5")))


async def _reply_playing(conn: object, rec: Recorder, llm: FakeChatLLM) -> str:
    llm.reply = REPLY
    llm.token_delay = 0.005
    await send_audio(conn, silence(300) + speak(QUESTION) + silence(900))
    first_audio = await rec.wait_for("response.output_audio.delta", timeout=40)
    await send_audio(conn, silence(1000))  # about a second of the reply plays
    return str(first_audio.response_id)


async def test_a_backchannel_resumes_the_reply_and_is_not_a_turn(
    hark_with_llm: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    async with realtime(hark_with_llm.base_url) as (conn, rec):
        response_id = await _reply_playing(conn, rec, llm)
        mark, requests = rec.mark(), len(llm.requests)
        # espeak-ng spells "Mhm." out as letters; this is its hum (tiny.en hears "Mm-mm.").
        await send_audio(conn, speak("Mm hmm.") + silence(700))
        paused = await rec.wait_for("hark.output_paused", after=mark)
        ignored = await rec.wait_for("hark.speech_ignored", after=mark)
        assert ignored.reason in ("backchannel", "noise")
        resumed = await rec.wait_for("hark.output_resumed", after=mark)
        assert resumed.audio_ms == paused.audio_ms  # where it paused
        done = await rec.wait_for("response.done", lambda e: e.response.id == response_id, timeout=60)
        assert done.response.status == "completed"
        assert done.response.output[0].content[0].transcript == REPLY
        kinds = [r.type for r in rec.events[mark:]]
        assert "input_audio_buffer.committed" not in kinds
        assert "output_audio_buffer.cleared" not in kinds
        assert "response.created" not in kinds  # nothing answered the "mhm"
        assert len(llm.requests) == requests


async def test_real_words_cancel_the_reply(
    hark_with_llm: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    async with realtime(hark_with_llm.base_url) as (conn, rec):
        response_id = await _reply_playing(conn, rec, llm)
        mark = rec.mark()
        await send_audio(conn, speak("Stop, tell me about London.") + silence(900))
        done = await rec.wait_for("response.done", lambda e: e.response.id == response_id)
        assert done.response.status == "cancelled"
        assert done.response.status_details.reason == "turn_detected"
        await rec.wait_for("output_audio_buffer.cleared", after=mark)
        final = await rec.wait_for("conversation.item.input_audio_transcription.completed", after=mark)
        assert {"stop", "london"} & set(words(final.transcript))
        await rec.wait_for("response.created", after=mark, timeout=40)  # the interruption is answered
        assert not rec.of("hark.speech_ignored")


async def test_interrupt_response_false_keeps_talking(
    hark_with_llm: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    detection = {"type": "server_vad", "interrupt_response": False}
    async with realtime(hark_with_llm.base_url, audio={"input": {"turn_detection": detection}}) as (
        conn,
        rec,
    ):
        response_id = await _reply_playing(conn, rec, llm)
        mark = rec.mark()
        await send_audio(conn, speak("Stop, tell me about London.") + silence(900))
        final = await rec.wait_for("conversation.item.input_audio_transcription.completed", after=mark)
        # The speech is a committed turn ...
        assert {"stop", "london"} & set(words(final.transcript))
        done = await rec.wait_for("response.done", lambda e: e.response.id == response_id, timeout=60)
        assert done.response.status == "completed"  # ... and the reply was not cut off
        assert done.response.output[0].content[0].transcript == REPLY
        kinds = [r.type for r in rec.events[mark:]]
        assert "output_audio_buffer.cleared" not in kinds and "hark.output_paused" not in kinds
        # The reply was still being given when the turn ended, so no response was created for it.
        assert [e.response.id for e in rec.of("response.created")] == [response_id]


async def test_create_response_false_commits_without_replying(
    hark_with_llm: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    llm.reply = "Sunny."
    detection = {"type": "server_vad", "create_response": False}
    async with realtime(hark_with_llm.base_url, audio={"input": {"turn_detection": detection}}) as (
        conn,
        rec,
    ):
        await send_audio(conn, silence(300) + speak(QUESTION) + silence(900))
        await rec.wait_for("input_audio_buffer.committed")
        final = await rec.wait_for("conversation.item.input_audio_transcription.completed", timeout=40)
        assert "paris" in final.transcript.lower()
        # A response would have been created at the commit, before the transcript came in.
        assert not rec.of("response.created")
        await conn.response.create()  # the client answers when it wants to
        done = await rec.wait_for("response.done", timeout=40)
        assert done.response.status == "completed"
        assert len(rec.of("response.created")) == 1
