"""Speech over a spoken reply, through the conversation with fake engines: the reply pauses,
then resumes (backchannel, no words, own words) or is cancelled (real words, or no transcript
by the bound); interrupt_response off keeps it going."""

from __future__ import annotations

import asyncio
from typing import Any

from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation
from hark.pipeline.interruptions import InterruptionPolicy
from hark.pipeline.turns import TurnConfig
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, fake_conversation, quiet, tone

REPLY = "One two three four five six seven eight. Nine ten eleven twelve thirteen fourteen."


class Harness:
    def __init__(self, **config: Any) -> None:
        self.events: list[ev.Event] = []
        self.stt = FakeSTT(text="tell me a story")
        self.llm = FakeLLM(chunks=(REPLY,))
        self.conversation: Conversation = fake_conversation(
            stt=self.stt, tts=FakeTTS(ms_per_char=25), llm=self.llm, emit=self.events.append, **config
        )

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def push(self, *pieces: bytes) -> None:
        """At real-time pace, 40 ms at a time, so the conversation's tasks run in between."""
        for piece in pieces:
            for offset in range(0, len(piece), 1920):
                await self.conversation.push_audio(piece[offset : offset + 1920])
                await asyncio.sleep(0.04)

    async def until(self, predicate: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)

    async def reply_playing(self) -> None:
        await self.push(tone(300), quiet(300))
        await self.until(lambda: len(self.of(ev.ResponseAudio)) >= 4)

    async def done(self) -> ev.ResponseDone:
        await self.until(lambda: bool(self.of(ev.ResponseDone)))
        return self.of(ev.ResponseDone)[0]  # type: ignore[no-any-return]


async def test_a_backchannel_pauses_the_reply_which_then_resumes_and_completes() -> None:
    h = Harness()
    await h.reply_playing()
    h.stt.text = "Mm-hmm."
    await h.push(tone(200), quiet(400))
    done = await h.done()
    assert done.status == "completed" and done.text == REPLY
    assert [e.reason for e in h.of(ev.SpeechIgnored)] == ["backchannel"]
    paused, resumed = h.of(ev.OutputPaused), h.of(ev.OutputResumed)
    assert len(paused) == 1 and len(resumed) == 1 and paused[0].audio_ms == resumed[0].audio_ms
    assert len(h.of(ev.InputCommitted)) == 1  # the question only
    assert len(h.of(ev.ResponseStarted)) == 1 and len(h.llm.calls) == 1
    assert not h.of(ev.OutputCleared)
    assert h.conversation.machine.state.value == "idle"
    await h.conversation.aclose()


async def test_the_audio_the_listener_lost_is_sent_again_on_resume() -> None:
    h = Harness()
    await h.reply_playing()
    h.stt.text = ""
    await h.push(tone(200), quiet(400))
    await h.done()
    sent = sum(len(e.pcm) for e in h.of(ev.ResponseAudio))
    sentences = ("One two three four five six seven eight.", "Nine ten eleven twelve thirteen fourteen.")
    full = sum(24_000 * 25 * len(s) // 1000 * 2 for s in sentences)
    assert [e.reason for e in h.of(ev.SpeechIgnored)] == ["noise"]
    # All of the reply went out, and what was ahead of the listener's playhead at the pause twice.
    assert sent > full
    assert h.of(ev.OutputPaused)[0].audio_ms > 0
    await h.conversation.aclose()


async def test_real_words_cancel_the_reply_and_are_a_turn() -> None:
    h = Harness()
    await h.reply_playing()
    h.stt.text = "Stop, tell me about Rome."
    await h.push(tone(300), quiet(400))
    done = await h.done()
    assert done.status == "cancelled" and done.reason == "turn_detected"
    assert h.of(ev.OutputPaused) and h.of(ev.OutputCleared)
    await h.until(lambda: len(h.of(ev.InputCommitted)) == 2)
    assert h.of(ev.TranscriptFinal)[-1].text == "Stop, tell me about Rome."
    await h.until(lambda: len(h.of(ev.ResponseStarted)) == 2)  # the interruption is answered
    assert not h.of(ev.SpeechIgnored)
    await h.conversation.aclose()


async def test_own_words_heard_back_do_not_interrupt() -> None:
    h = Harness()
    await h.reply_playing()
    h.stt.text = "three four five six"
    await h.push(tone(300), quiet(400))
    done = await h.done()
    assert done.status == "completed"
    assert [e.reason for e in h.of(ev.SpeechIgnored)] == ["self_speech"]
    await h.conversation.aclose()


async def test_speech_over_the_reply_is_checked_deterministically_and_settled_in_full() -> None:
    h = Harness()
    await h.reply_playing()
    before = len(h.stt.deterministic)
    h.stt.text = ""
    await h.push(tone(800), quiet(400))
    await h.done()
    over_reply = h.stt.deterministic[before:]
    # The checks while the speech goes on may not read the same audio two ways; the transcript
    # that settles it (and would be the turn's) keeps the engine's full decode.
    assert True in over_reply[:-1] and over_reply[-1] is False
    assert h.stt.deterministic[:before] == [False] * before  # the question's own transcript
    await h.conversation.aclose()


async def test_a_slow_transcript_keeps_the_reply_paused_past_the_bound_then_decides() -> None:
    h = Harness(interruptions=InterruptionPolicy(confirm_ms=100))
    await h.reply_playing()
    h.stt.text, h.stt.delay = "Mm-hmm.", 0.5
    await h.push(tone(200), quiet(400))
    done = await h.done()
    assert done.status == "completed" and done.text == REPLY
    assert [e.reason for e in h.of(ev.SpeechIgnored)] == ["backchannel"]
    assert not h.of(ev.OutputCleared)
    await h.conversation.aclose()


async def test_without_backchannels_speech_cancels_at_once() -> None:
    h = Harness(interruptions=InterruptionPolicy(backchannels=False))
    await h.reply_playing()
    h.stt.text = "Mm-hmm."
    await h.push(tone(200))
    done = await h.done()
    assert done.status == "cancelled"
    assert not h.of(ev.OutputPaused)
    await h.conversation.aclose()


async def test_interrupt_response_off_keeps_the_reply_and_commits_the_turn() -> None:
    h = Harness()
    h.conversation.configure_turns(
        TurnConfig(start_ms=64, end_silence_ms=200), prefix_ms=100, interrupt_response=False
    )
    await h.reply_playing()
    h.stt.text = "Stop, tell me about Rome."
    await h.push(tone(300), quiet(400))
    await h.until(lambda: len(h.of(ev.TranscriptFinal)) == 2)
    done = await h.done()
    assert done.status == "completed" and done.text == REPLY
    assert not h.of(ev.OutputPaused) and not h.of(ev.OutputCleared)
    assert len(h.of(ev.ResponseStarted)) == 1  # the reply was still being given: none for the turn
    await h.conversation.aclose()


async def test_create_response_off_commits_without_replying() -> None:
    h = Harness()
    h.conversation.configure_turns(
        TurnConfig(start_ms=64, end_silence_ms=200), prefix_ms=100, create_response=False
    )
    await h.push(tone(300), quiet(400))
    await h.until(lambda: bool(h.of(ev.TranscriptFinal)))
    assert h.of(ev.InputCommitted) and not h.of(ev.ResponseStarted)
    assert not h.llm.calls
    await h.conversation.aclose()
