"""The conversation conductor with fake engines: turns, replies, failures, barge-in."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from hark.engines.base import ToolCall, ToolSpec
from hark.errors import EngineError, EngineUnavailable
from hark.pipeline import events as ev
from hark.pipeline.conversation import Conversation
from hark.pipeline.conversation_state import ConversationState
from hark.pipeline.errors import (
    CommitTooShort,
    DuplicateItem,
    InvalidValue,
    NoActiveResponse,
    PipelineError,
    ResponseActive,
    UnknownCall,
    UnknownItem,
)
from hark.pipeline.items import Item
from hark.pipeline.options import ResponseOptions
from hark.pipeline.slot import Finished
from hark.pipeline.tools import Tool, Toolbox
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, fake_conversation, quiet, tone

RATE = 24_000


@dataclass
class Harness:
    llm: FakeLLM | None = field(default_factory=lambda: FakeLLM(chunks=("Hello there. ", "How are you?")))
    tts: FakeTTS = field(default_factory=lambda: FakeTTS(ms_per_char=10))
    stt: FakeSTT = field(default_factory=lambda: FakeSTT(text="what time is it"))
    events: list[ev.Event] = field(default_factory=list)
    speculative_reply: bool = True
    tools: Toolbox | None = None
    llm_calls_at: dict[str, int] = field(default_factory=dict)
    """LLM calls made when each kind of event was (last) emitted."""
    first_audio_at: float | None = None
    conversation: Conversation = field(init=False)

    def __post_init__(self) -> None:
        self.conversation = fake_conversation(
            stt=self.stt,
            tts=self.tts,
            llm=self.llm,
            emit=self._record,
            tools=self.tools,
            speculative_reply=self.speculative_reply,
        )

    def _record(self, event: ev.Event) -> None:
        self.events.append(event)
        if isinstance(event, ev.ResponseAudio) and self.first_audio_at is None:
            self.first_audio_at = time.monotonic()
        self.llm_calls_at[type(event).__name__] = len(self.llm.calls) if self.llm is not None else 0

    async def say_live(self, *pieces: bytes) -> None:
        """Audio at real-time pace, 40 ms at a time, so the conversation's tasks run in between."""
        for piece in pieces:
            for offset in range(0, len(piece), 1920):
                await self.conversation.push_audio(piece[offset : offset + 1920])
                await asyncio.sleep(0.04)

    async def say(self, ms: int = 600, then_quiet: int = 400) -> None:
        for piece in (tone(ms), quiet(then_quiet)):
            for offset in range(0, len(piece), 1920):
                await self.conversation.push_audio(piece[offset : offset + 1920])

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def done(self, timeout: float = 5.0) -> ev.ResponseDone:
        async with asyncio.timeout(timeout):
            while not self.of(ev.ResponseDone):
                await asyncio.sleep(0.01)
        return self.of(ev.ResponseDone)[-1]  # type: ignore[no-any-return]


async def test_a_turn_from_speech_to_spoken_reply() -> None:
    h = Harness()
    await h.say()
    done = await h.done()
    assert done.status == "completed" and done.text == "Hello there. How are you?"
    kinds = [type(e).__name__ for e in h.events if not isinstance(e, ev.ResponseAudio | ev.StateChanged)]
    assert kinds == [
        "SpeechStarted",
        "SpeechStopped",
        "InputCommitted",
        "TranscriptFinal",
        "ResponseStarted",
        "MessageStarted",
        "ResponseText",
        "ResponseText",
        "Latency",
        "MessageDone",
        "ResponseDone",
    ]
    assert [e.state.value for e in h.of(ev.StateChanged)] == ["listening", "thinking", "speaking", "idle"]
    assert "".join(e.delta for e in h.of(ev.ResponseText)) == "Hello there. How are you?"
    assert h.llm is not None
    assert [(m.role, m.content) for m in h.llm.calls[0]] == [
        ("system", "Be brief."),
        ("user", "what time is it"),
    ]
    # The reply is sent in 50 ms chunks.
    sizes = {len(e.pcm) for e in h.of(ev.ResponseAudio)}
    assert RATE * 50 // 1000 * 2 in sizes
    await h.conversation.aclose()


async def test_echo_mode_without_an_llm() -> None:
    h = Harness(llm=None)
    await h.say()
    done = await h.done()
    assert done.text == "Echo mode. You said: what time is it"
    await h.conversation.aclose()


async def test_unreachable_llm_says_so_in_echo_mode_and_reports_an_error() -> None:
    h = Harness(llm=FakeLLM(fail_before=EngineUnavailable("refused")))
    await h.say()
    done = await h.done()
    assert done.status == "completed"
    assert done.text.startswith("Echo mode: I cannot reach the language model right now.")
    assert [e.code for e in h.of(ev.ConversationError)] == ["llm_unavailable"]
    await h.conversation.aclose()


async def test_llm_failure_after_words_ends_the_turn_without_repeating() -> None:
    h = Harness(llm=FakeLLM(chunks=("First sentence here. ", "Second one never comes."), fail_after=1))
    await h.say()
    done = await h.done()
    assert done.status == "failed"
    assert [e.code for e in h.of(ev.ConversationError)] == ["engine_error"]
    spoken = "".join(e.delta for e in h.of(ev.ResponseText))
    assert "Second" not in spoken and spoken.count("First") <= 1
    await h.conversation.aclose()


async def test_a_tts_failure_mid_sentence_retries_that_sentence_only() -> None:
    """The first 100 ms of the sentence were passed on before the TTS failed: the sentence is
    synthesised again and those 100 ms skipped, so the audio is the sentence once, whole."""
    sentence = "A fairly long first sentence to speak."
    tts = FakeTTS(ms_per_char=10, fail_after=1, fail_times=1)
    h = Harness(tts=tts, llm=FakeLLM(chunks=(sentence,)))
    await h.say()
    done = await h.done()
    assert done.status == "completed"
    assert tts.texts == [sentence] * 2
    assert [e.delta for e in h.of(ev.ResponseText)] == [sentence]
    assert sum(len(e.pcm) for e in h.of(ev.ResponseAudio)) == RATE * 10 * len(sentence) // 1000 * 2


async def test_a_sentence_is_sent_while_it_is_still_being_synthesised() -> None:
    """Pieces go out as the TTS makes them: the first audio leaves before the last piece exists."""
    tts = FakeTTS(ms_per_char=10, chunk_ms=100, piece_delay=0.05)
    h = Harness(tts=tts, llm=FakeLLM(chunks=("A fairly long first sentence to speak.",)))
    await h.say()
    done = await h.done()
    assert len(tts.yielded_at) == 4 and h.first_audio_at is not None
    assert h.first_audio_at < tts.yielded_at[-1]  # the sentence was on its way before it was whole
    assert done.text == "A fairly long first sentence to speak."
    await h.conversation.aclose()


async def test_barge_in_cancels_the_reply_and_keeps_only_heard_words() -> None:
    long_reply = ("One two three four five six seven eight. " * 6).strip()
    h = Harness(llm=FakeLLM(chunks=(long_reply,)), tts=FakeTTS(ms_per_char=40))
    await h.say()
    async with asyncio.timeout(5):
        while not h.of(ev.ResponseAudio):
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    audio_before = len(h.of(ev.ResponseAudio))
    await h.say(ms=300, then_quiet=0)
    done = await h.done()
    assert done.status == "cancelled" and done.reason == "turn_detected"
    assert h.of(ev.OutputCleared)
    assert len(h.of(ev.ResponseAudio)) <= audio_before + 1
    heard = done.text.split()
    assert 0 < len(heard) < len(long_reply.split())
    assert long_reply.split()[: len(heard)] == heard
    assert h.conversation.history.messages()[-1].content == done.text
    await h.conversation.aclose()


async def test_the_next_reply_waits_for_the_interrupted_one_to_end() -> None:
    """A reply whose speech takes a few loop passes to stop: the reply to the interruption
    opens after its response.done, and the LLM is sent the words heard of it."""
    long_reply = ("One two three four five six seven eight. " * 6).strip()
    h = Harness(
        llm=FakeLLM(scripts=[(long_reply,)], chunks=("Sure.",)),
        tts=FakeTTS(ms_per_char=40, piece_delay=0.02, stop_passes=20),
    )
    await h.say()
    async with asyncio.timeout(5):
        while not h.of(ev.ResponseAudio):
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    await h.say(ms=300, then_quiet=600)
    async with asyncio.timeout(5):
        while len(h.of(ev.ResponseDone)) < 2:
            await asyncio.sleep(0.01)
    first, second = h.of(ev.ResponseDone)
    assert first.status == "cancelled" and second.status == "completed"
    order = [
        (type(e).__name__, e.response_id)
        for e in h.events
        if isinstance(e, ev.ResponseStarted | ev.ResponseDone)
    ]
    assert order == [
        ("ResponseStarted", first.response_id),
        ("ResponseDone", first.response_id),
        ("ResponseStarted", second.response_id),
        ("ResponseDone", second.response_id),
    ]
    assert h.llm is not None
    asked = [(m.role, m.content) for m in h.llm.calls[-1]]
    assert ("assistant", first.text) in asked and first.text
    await h.conversation.aclose()


async def test_noise_without_words_gets_no_reply() -> None:
    h = Harness(stt=FakeSTT(text=""))
    await h.say()
    await asyncio.sleep(0.3)
    assert h.of(ev.TranscriptFinal)[0].text == ""
    assert not h.of(ev.ResponseStarted)
    assert h.conversation.machine.state.value == "idle"
    await h.conversation.aclose()


async def test_failed_transcription_is_reported_and_not_answered() -> None:
    h = Harness(stt=FakeSTT(fail=EngineError("boom", retryable=True)))
    await h.say()
    await asyncio.sleep(0.3)
    assert h.of(ev.TranscriptFailed)
    assert not h.of(ev.ResponseStarted)
    await h.conversation.aclose()


async def test_truncate_keeps_the_words_played() -> None:
    h = Harness(
        llm=FakeLLM(chunks=("Alpha beta gamma delta. Epsilon zeta eta theta.",)), tts=FakeTTS(ms_per_char=20)
    )
    await h.say()
    done = await h.done(timeout=10)
    assert done.status == "completed"
    h.conversation.truncate(done.item_id, 300)
    # 300 ms of the 460 ms first sentence (23 characters at 20 ms): 2 of its 4 words.
    assert h.conversation.history.text_of(done.item_id) == "Alpha beta"
    assert h.of(ev.ItemTruncated)[0].audio_end_ms == 300
    await h.conversation.aclose()


async def test_the_transcript_is_made_during_the_end_of_turn_silence() -> None:
    """Speculative end of turn: transcription starts at the first short silence; when the turn
    ends on that silence, its result is the final transcript (no second transcription)."""
    h = Harness(stt=FakeSTT(text="what time is it", delay=0.15))
    await h.say(ms=600, then_quiet=400)
    await h.done()
    assert h.stt.calls == 1
    assert 0.6 <= h.stt.durations[0] < 1.2


async def test_a_pause_inside_a_turn_is_not_its_end() -> None:
    h = Harness()
    for piece in (tone(400), quiet(150), tone(400), quiet(400)):
        for offset in range(0, len(piece), 1920):
            await h.conversation.push_audio(piece[offset : offset + 1920])
            await asyncio.sleep(0)  # audio arrives over time: tasks get to run in between
    await h.done()
    assert len(h.of(ev.SpeechStarted)) == 1 and len(h.of(ev.SpeechStopped)) == 1
    # One speculative transcription per pause; the one at the real end is the final transcript
    # and covers both stretches of speech.
    assert h.stt.calls == 2
    assert h.stt.durations[-1] > h.stt.durations[0] + 0.4


async def test_the_reply_is_prepared_during_the_end_of_turn_silence() -> None:
    """Speculative reply: at the first short silence the transcript is made and the LLM asked,
    but nothing is sent until the turn ends on that silence; then the events are the usual ones."""
    h = Harness(llm=FakeLLM(chunks=("Hello there. ", "How are you?"), first_delay=0.05))
    await h.say_live(tone(600), quiet(400))
    done = await h.done()
    assert done.status == "completed" and done.text == "Hello there. How are you?"
    assert h.llm is not None and len(h.llm.calls) == 1
    assert h.llm_calls_at["SpeechStopped"] == 1  # asked before the turn was over
    kinds = [type(e).__name__ for e in h.events if not isinstance(e, ev.ResponseAudio | ev.StateChanged)]
    assert kinds == [
        "SpeechStarted",
        "SpeechStopped",
        "InputCommitted",
        "TranscriptFinal",
        "ResponseStarted",
        "MessageStarted",
        "ResponseText",
        "ResponseText",
        "Latency",
        "MessageDone",
        "ResponseDone",
    ]
    assert [(m.role, m.content) for m in h.llm.calls[0]] == [
        ("system", "Be brief."),
        ("user", "what time is it"),
    ]
    assert [(m.role, m.content) for _, m in h.conversation.history.entries()] == [
        ("user", "what time is it"),
        ("assistant", "Hello there. How are you?"),
    ]
    assert [e.state.value for e in h.of(ev.StateChanged)] == ["listening", "thinking", "speaking", "idle"]
    await h.conversation.aclose()


async def test_a_held_reply_is_dropped_without_a_trace_when_the_user_goes_on() -> None:
    h = Harness(llm=FakeLLM(chunks=("Hello there. ", "How are you?"), first_delay=0.05))
    await h.say_live(tone(400), quiet(150), tone(400), quiet(400))
    await h.done()
    assert h.llm is not None and len(h.llm.calls) == 2  # the held reply's, then the turn's
    stopped = next(i for i, e in enumerate(h.events) if isinstance(e, ev.SpeechStopped))
    before = [type(e).__name__ for e in h.events[:stopped]]
    assert before == ["SpeechStarted", "StateChanged"]  # nothing of the held reply came out
    assert len(h.of(ev.ResponseStarted)) == 1 and len(h.of(ev.ResponseDone)) == 1
    assert [m.role for _, m in h.conversation.history.entries()] == ["user", "assistant"]
    await h.conversation.aclose()


async def test_a_held_reply_runs_no_tool_before_the_turn_ends() -> None:
    runs: list[int] = []

    async def record(args: dict[str, Any]) -> str:
        runs.append(len(h.events))
        return "noon"

    spec = ToolSpec("clock", "The time.", {"type": "object", "properties": {}})
    call = ToolCall("call_1", "clock", "{}")
    h = Harness(llm=FakeLLM(chunks=(call, "It is noon.")), tools=Toolbox([Tool(spec, record)]))
    await h.say_live(tone(400), quiet(150), tone(400), quiet(400))
    await h.done()
    stopped = next(i for i, e in enumerate(h.events) if isinstance(e, ev.SpeechStopped))
    assert runs and all(at > stopped for at in runs)  # the held reply (dropped) ran none
    await h.conversation.aclose()


async def test_without_speculative_replies_the_llm_waits_for_the_end_of_the_turn() -> None:
    h = Harness(speculative_reply=False)
    await h.say_live(tone(600), quiet(400))
    await h.done()
    assert h.llm is not None and len(h.llm.calls) == 1
    assert h.llm_calls_at["SpeechStopped"] == 0
    assert h.stt.calls == 1  # the transcript is still made during the silence
    await h.conversation.aclose()


async def test_a_cancelled_response_says_who_cancelled_it() -> None:
    h = Harness(tts=FakeTTS(ms_per_char=40))
    await h.say()
    async with asyncio.timeout(5):
        while not h.of(ev.ResponseAudio):
            await asyncio.sleep(0.01)
    assert h.conversation.cancel_response()
    done = await h.done()
    assert (done.status, done.reason) == ("cancelled", "client_cancelled")
    await h.conversation.aclose()


async def test_after_a_cancel_a_new_response_can_start() -> None:
    h = Harness(tts=FakeTTS(ms_per_char=40))
    await h.say()
    async with asyncio.timeout(5):
        while not h.of(ev.ResponseAudio):
            await asyncio.sleep(0.01)
    assert h.conversation.cancel_response()
    assert h.conversation.machine.state is ConversationState.IDLE
    await h.done()
    h.conversation.create_response()  # a speaking state left behind would refuse this
    async with asyncio.timeout(5):
        while len(h.of(ev.ResponseDone)) < 2:
            await asyncio.sleep(0.01)
    assert h.of(ev.ResponseDone)[-1].status == "completed"
    await h.conversation.aclose()


async def test_say_speaks_fixed_text_without_the_llm_and_keeps_it_in_the_history() -> None:
    h = Harness()
    h.conversation.say("Hello! How can I help you?")
    with pytest.raises(ResponseActive):
        h.conversation.say("Again.")
    done = await h.done()
    assert (done.status, done.text) == ("completed", "Hello! How can I help you?")
    assert h.llm is not None and h.llm.calls == []
    assert h.of(ev.ResponseAudio)
    assert [m.role for _, m in h.conversation.history.entries()] == ["assistant"]
    assert h.conversation.machine.state is ConversationState.IDLE
    await h.conversation.aclose()


async def test_refusals_are_typed_pipeline_errors_with_codes() -> None:
    h = Harness(llm=FakeLLM(chunks=("One. ", "Two. ", "Three."), chunk_delay=0.2))
    c = h.conversation
    cases: list[tuple[Any, type[PipelineError], str]] = [
        (c.commit, CommitTooShort, "input_audio_buffer_commit_empty"),
        (lambda: c.cancel_response(strict=True), NoActiveResponse, "response_cancel_not_active"),
        (lambda: c.truncate("nope", 10), UnknownItem, "item_not_found"),
        (lambda: c.delete_item("nope"), UnknownItem, "item_not_found"),
        (lambda: c.get_item("nope"), UnknownItem, "item_not_found"),
        (
            lambda: c.add_item(Item("u1", "message", role="user", text="again")),
            DuplicateItem,
            "item_create_duplicate_item_id",
        ),
        (
            lambda: c.add_item(Item("o1", "function_call_output", call_id="call_x", output="{}")),
            UnknownCall,
            "function_call_not_found",
        ),
        (lambda: c.create_response(ResponseOptions(input=("ghost",))), UnknownItem, "item_not_found"),
    ]
    c.add_item(Item("u1", "message", role="user", text="hello"))
    for action, kind, code in cases:
        with pytest.raises(kind) as info:
            action()
        assert info.value.code == code
        assert not isinstance(info.value, ValueError | KeyError | RuntimeError)
    c.create_response()
    with pytest.raises(ResponseActive) as active:
        c.create_response()
    assert active.value.code == "conversation_already_has_active_response"
    done = await h.done()
    assert done.status == "completed" and [i.id for i in c.items.items()] == ["u1", done.item_id]


async def test_a_finished_reply_is_not_kept_whole_and_can_still_be_truncated() -> None:
    h = Harness(
        llm=FakeLLM(chunks=("Alpha beta gamma delta. Epsilon zeta eta theta.",)), tts=FakeTTS(ms_per_char=20)
    )
    await h.say()
    done = await h.done(timeout=10)
    # The slot keeps only the words by position and the audio's end for truncate, not the reply
    # (its TTS stream, buffers and callbacks).
    kept = h.conversation.slot._recent[done.item_id]
    assert isinstance(kept, Finished)
    with pytest.raises(InvalidValue):
        h.conversation.truncate(done.item_id, int(kept.peak_ms) + 100)
    h.conversation.truncate(done.item_id, 300)
    assert h.conversation.history.text_of(done.item_id) == "Alpha beta"
    await h.conversation.aclose()
