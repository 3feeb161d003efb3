"""The speculative reply under the interleavings a real session produces.

At a pause inside a turn the conversation transcribes what was said and prepares a reply that is
held back; it speaks only if the turn ends on that pause, and otherwise leaves no trace. Each test
stops the audio at the pause, lets the held reply get as far as it needs, does one thing (a client
event, a failure, more speech), then ends the turn and checks what came out.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from hark.engines.base import ToolCall, ToolSpec
from hark.errors import EngineError, EngineUnavailable
from hark.pipeline import events as ev
from hark.pipeline.conversation import MAX_TOOL_ROUNDS, Conversation
from hark.pipeline.tools import Tool, Toolbox
from hark.pipeline.turns import TurnConfig
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, fake_conversation, quiet, tone

RATE = 24_000
PIECE = 1920  # 40 ms of PCM16 at 24 kHz


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


@dataclass
class Harness:
    llm: FakeLLM | None = field(default_factory=lambda: FakeLLM(chunks=("Hello there. ", "How are you?")))
    tts: FakeTTS = field(default_factory=lambda: FakeTTS(ms_per_char=10))
    stt: FakeSTT = field(default_factory=lambda: FakeSTT(text="what time is it"))
    turn: TurnConfig = field(default_factory=lambda: TurnConfig(start_ms=64, end_silence_ms=200))
    history_turns: int = 5
    speculative_reply: bool = True
    tools: Toolbox | None = None
    events: list[ev.Event] = field(default_factory=list)
    conversation: Conversation = field(init=False)
    tasks_before: set[asyncio.Task[Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.tasks_before = asyncio.all_tasks()
        self.conversation = fake_conversation(
            stt=self.stt,
            tts=self.tts,
            llm=self.llm,
            emit=self.events.append,
            tools=self.tools,
            history_turns=self.history_turns,
            turn=self.turn,
            speculative_reply=self.speculative_reply,
        )

    @property
    def llm_calls(self) -> int:
        return len(self.llm.calls) if self.llm is not None else 0

    async def live(self, *pieces: bytes) -> None:
        """Audio at real-time pace, 40 ms at a time, so the conversation's tasks run in between."""
        for piece in pieces:
            for offset in range(0, len(piece), PIECE):
                await self.conversation.push_audio(piece[offset : offset + PIECE])
                await asyncio.sleep(0.04)

    async def speak_to_pause(self, ms: int = 500) -> None:
        """Speech, then silence until the pause is seen (a speculative transcription starts);
        the audio stops there, so the turn stays open for as long as the test likes."""
        calls = self.stt.calls
        await self.live(tone(ms))
        for _ in range(50):
            await self.live(quiet(40))
            if self.stt.calls > calls:
                return
        raise AssertionError("no pause was detected")

    async def held_reply_ready(self) -> None:
        """The held reply has asked the LLM and synthesised its first sentence."""
        await until(lambda: bool(self.tts.texts))

    async def running(self) -> set[asyncio.Task[Any]]:
        """Tasks started since the harness was made that are still running, once cancelled ones
        have had a moment to finish."""
        await asyncio.sleep(0.05)
        return {t for t in asyncio.all_tasks() - self.tasks_before if t is not asyncio.current_task()}

    async def end_turn(self) -> None:
        await self.live(quiet(400))

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def kinds(self) -> list[str]:
        quiet_kinds = ev.ResponseAudio | ev.StateChanged
        return [type(e).__name__ for e in self.events if not isinstance(e, quiet_kinds)]

    def states(self) -> list[str]:
        return [e.state.value for e in self.of(ev.StateChanged)]

    def before_speech_stopped(self) -> list[str]:
        stopped = next(i for i, e in enumerate(self.events) if isinstance(e, ev.SpeechStopped))
        return [type(e).__name__ for e in self.events[:stopped]]

    def history(self) -> list[tuple[str, str]]:
        return [(m.role, m.content) for _, m in self.conversation.history.entries()]

    async def done(self, count: int = 1, timeout: float = 5.0) -> list[ev.ResponseDone]:
        await until(lambda: len(self.of(ev.ResponseDone)) >= count, timeout)
        return self.of(ev.ResponseDone)  # type: ignore[no-any-return]

    def assert_responses_well_formed(self) -> None:
        """Each response starts once and ends once, in that order, and everything it said is
        between the two; nothing is said for a response that never started (a held reply)."""
        started = [e.response_id for e in self.of(ev.ResponseStarted)]
        finished = [e.response_id for e in self.of(ev.ResponseDone)]
        assert len(set(started)) == len(started) and len(set(finished)) == len(finished)
        assert started == finished
        open_ids: set[str] = set()
        for event in self.events:
            if isinstance(event, ev.ResponseStarted):
                open_ids.add(event.response_id)
            elif isinstance(event, ev.ResponseDone):
                open_ids.remove(event.response_id)
            elif isinstance(event, ev.ResponseText | ev.ResponseAudio | ev.Latency):
                assert event.response_id in open_ids


@pytest.fixture(autouse=True)
async def no_stray_tasks() -> AsyncIterator[list[dict[str, Any]]]:
    """Fails a test that leaves a task running or lets a task's exception go unretrieved."""
    loop = asyncio.get_running_loop()
    before = asyncio.all_tasks()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
        leftover = {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}
        assert not leftover, f"tasks still running after the test: {leftover}"
        gc.collect()
        await asyncio.sleep(0)
        assert not errors, [e.get("message") for e in errors]
    finally:
        loop.set_exception_handler(previous)


async def settle(h: Harness) -> None:
    """Close the conversation: nothing of it is left running."""
    await h.conversation.aclose()
    assert not await h.running()


# -- the held reply is released -------------------------------------------------------------


async def test_released_reply_reports_like_any_other() -> None:
    h = Harness()
    await h.speak_to_pause()
    await h.held_reply_ready()
    await h.end_turn()
    [done] = await h.done()
    assert done.status == "completed" and done.text == "Hello there. How are you?"
    assert h.llm_calls == 1 and h.stt.calls == 1
    assert h.tts.texts == ["Hello there.", "How are you?"]  # nothing synthesised twice
    assert h.before_speech_stopped() == ["SpeechStarted", "StateChanged"]
    assert h.kinds() == [
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
    assert h.states() == ["listening", "thinking", "speaking", "idle"]
    committed = h.of(ev.InputCommitted)[0]
    assert committed.item_id == h.of(ev.SpeechStopped)[0].item_id == h.of(ev.TranscriptFinal)[0].item_id
    assert h.history() == [("user", "what time is it"), ("assistant", "Hello there. How are you?")]
    [latency] = h.of(ev.Latency)
    values = (
        latency.end_of_turn_ms,
        latency.stt_ms,
        latency.llm_ttft_ms,
        latency.tts_ttfb_ms,
        latency.voice_to_voice_ms,
    )
    assert all(v is not None and v >= 0 for v in values), latency
    # Audio goes out only once the end of the turn is known.
    assert latency.end_of_turn_ms <= latency.voice_to_voice_ms
    h.assert_responses_well_formed()
    await settle(h)


async def test_released_reply_runs_its_tools_once_and_only_after_the_turn_ends() -> None:
    runs: list[int] = []

    async def record(args: dict[str, Any]) -> str:
        runs.append(len(h.events))
        return "noon"

    spec = ToolSpec("clock", "The time.", {"type": "object", "properties": {}})
    call = ToolCall("call_1", "clock", "{}")
    h = Harness(llm=FakeLLM(chunks=(call, "It is noon.")), tools=Toolbox([Tool(spec, record)]))
    await h.speak_to_pause()
    await until(lambda: h.llm_calls == 1)
    await asyncio.sleep(0.1)  # the held reply waits at its tool call
    assert not runs
    await h.end_turn()
    await h.done()
    started = next(i for i, e in enumerate(h.events) if isinstance(e, ev.ResponseStarted))
    # The fake asks for the tool in every round: one reply, so one run per round, all after release.
    assert len(runs) == MAX_TOOL_ROUNDS + 1 and all(at > started for at in runs)
    assert h.llm_calls == MAX_TOOL_ROUNDS + 1
    h.assert_responses_well_formed()
    await settle(h)


async def test_history_is_trimmed_the_same_for_a_held_reply() -> None:
    h = Harness(history_turns=1)
    for _ in range(2):
        await h.speak_to_pause()
        await h.held_reply_ready()
        h.tts.texts.clear()
        await h.end_turn()
        await h.done(len(h.of(ev.ResponseStarted)))
    assert h.llm is not None and h.llm_calls == 2
    assert [m.role for m in h.llm.calls[1]] == ["system", "user"]
    assert h.history() == [("user", "what time is it"), ("assistant", "Hello there. How are you?")]
    await settle(h)


async def test_barge_in_just_after_release_cancels_it_once() -> None:
    long_reply = "One two three four five six seven eight. " * 4
    h = Harness(llm=FakeLLM(chunks=(long_reply,)), tts=FakeTTS(ms_per_char=10))
    await h.speak_to_pause()
    await h.held_reply_ready()
    await h.live(quiet(200))  # the turn ends on the pause: released
    assert h.of(ev.ResponseStarted)
    h.tts.texts.clear()
    # The user talks over it at once: the reply pauses, the words cancel it, then a pause (the
    # transcriptions that judge speech over a reply come before it, so speak_to_pause can't wait).
    await h.live(tone(500), quiet(160))
    [first] = await h.done()
    assert first.status == "cancelled" and first.reason == "turn_detected"
    assert len(h.of(ev.OutputCleared)) == 1
    await until(lambda: h.llm_calls == 2)
    await until(lambda: "One two three four five six seven eight." in h.tts.texts)
    await h.end_turn()
    done = await h.done(2, timeout=10)
    assert [d.status for d in done] == ["cancelled", "completed"]
    assert [role for role, _ in h.history()].count("user") == 2
    assert h.history()[-1] == ("assistant", long_reply.strip())
    assert h.llm is not None and h.llm_calls == 2
    assert [m.role for m in h.llm.calls[1]][-1] == "user"
    assert [m.role for m in h.llm.calls[1]].count("user") == 2
    h.assert_responses_well_formed()
    await settle(h)


async def test_response_cancel_during_the_pause_sees_no_response_and_the_held_one_survives() -> None:
    h = Harness()
    await h.speak_to_pause()
    await h.held_reply_ready()
    assert h.conversation.cancel_response() is False  # nothing the client knows of is running
    await h.end_turn()
    [done] = await h.done()
    assert done.status == "completed" and h.llm_calls == 1
    h.assert_responses_well_formed()
    await settle(h)


# -- the held reply is dropped ----------------------------------------------------------------


async def test_two_pauses_in_one_turn_release_only_the_second() -> None:
    h = Harness()
    await h.speak_to_pause(400)
    await h.held_reply_ready()
    await h.speak_to_pause(400)
    await until(lambda: h.llm_calls == 2)
    await h.end_turn()
    [done] = await h.done()
    assert done.status == "completed"
    assert h.stt.calls == 2 and h.llm_calls == 2
    assert h.before_speech_stopped() == ["SpeechStarted", "StateChanged"]
    assert h.history() == [("user", "what time is it"), ("assistant", "Hello there. How are you?")]
    h.assert_responses_well_formed()
    await settle(h)


async def test_a_turn_ending_elsewhere_than_the_pause_drops_the_held_reply() -> None:
    # The turn reaches its maximum length during the pause: it ends there, not where the pause began.
    h = Harness(turn=TurnConfig(start_ms=64, end_silence_ms=600, max_turn_ms=800))
    await h.speak_to_pause(500)
    await h.held_reply_ready()
    await h.end_turn()
    [done] = await h.done()
    assert done.status == "completed"
    assert h.stt.calls == 2 and h.llm_calls == 2  # the turn's own transcript and reply
    assert h.before_speech_stopped() == ["SpeechStarted", "StateChanged"]
    assert len(h.of(ev.TranscriptFinal)) == 1
    assert h.history() == [("user", "what time is it"), ("assistant", "Hello there. How are you?")]
    h.assert_responses_well_formed()
    await settle(h)


async def test_clear_during_the_pause_drops_the_held_reply() -> None:
    h = Harness()
    await h.speak_to_pause()
    await h.held_reply_ready()
    h.conversation.clear_input()
    await h.end_turn()
    await asyncio.sleep(0.2)
    assert not h.of(ev.ResponseStarted) and not h.of(ev.TranscriptFinal)
    assert h.history() == []
    assert h.states() == ["listening", "idle"]
    assert h.conversation.idle
    assert not await h.running()  # nothing of the held reply lingers
    await settle(h)


async def test_commit_during_the_pause_answers_once() -> None:
    h = Harness()
    await h.speak_to_pause()
    await h.held_reply_ready()
    item_id = h.conversation.commit()
    [done] = await h.done()
    await h.live(quiet(400))
    assert done.status == "completed"
    assert h.of(ev.InputCommitted)[0].item_id == item_id
    assert len(h.of(ev.ResponseStarted)) == 1
    assert h.history() == [("user", "what time is it"), ("assistant", "Hello there. How are you?")]
    h.assert_responses_well_formed()
    assert h.conversation.idle
    assert not await h.running()
    await settle(h)


async def test_turn_detection_switched_off_during_the_pause() -> None:
    h = Harness()
    await h.speak_to_pause()
    await h.held_reply_ready()
    h.conversation.set_turn_detection(False)
    await h.live(quiet(200))
    h.conversation.commit()
    [done] = await h.done()
    assert done.status == "completed"
    assert len(h.of(ev.ResponseStarted)) == 1 and not h.of(ev.SpeechStopped)
    assert h.history() == [("user", "what time is it"), ("assistant", "Hello there. How are you?")]
    h.assert_responses_well_formed()
    assert not await h.running()
    await settle(h)


async def test_session_update_of_turn_detection_during_the_pause_drops_the_held_reply() -> None:
    h = Harness()
    await h.speak_to_pause()
    await h.held_reply_ready()
    # What the realtime transport does for a session.update with turn_detection (server_vad).
    h.conversation.set_turn_detection(True)
    h.conversation.auto_respond = False
    h.conversation.listener.configure(TurnConfig(start_ms=64, end_silence_ms=200), prefix_ms=100)
    await h.end_turn()
    assert not h.of(ev.ResponseStarted) and not h.of(ev.SpeechStopped)
    assert not await h.running()
    await settle(h)


async def test_auto_respond_switched_off_during_the_pause_is_honoured() -> None:
    h = Harness()
    await h.speak_to_pause()
    await h.held_reply_ready()
    h.conversation.auto_respond = False
    await h.end_turn()
    await until(lambda: bool(h.of(ev.TranscriptFinal)))
    await asyncio.sleep(0.2)
    assert not h.of(ev.ResponseStarted)
    assert h.history() == [("user", "what time is it")]
    assert h.states() == ["listening", "idle"]
    assert not await h.running()
    await settle(h)


async def test_response_create_during_the_pause_replaces_the_held_reply() -> None:
    h = Harness(llm=FakeLLM(chunks=("Hello there. ", "How are you?"), first_delay=0.3))
    await h.speak_to_pause()
    await until(lambda: h.llm_calls == 1)
    h.conversation.create_response()
    await h.end_turn()
    done = await h.done(2)
    # The client's response was superseded by the turn's own; the held one left no trace.
    assert [d.status for d in done] == ["cancelled", "completed"]
    assert len(h.of(ev.ResponseStarted)) == 2
    assert h.history() == [("user", "what time is it"), ("assistant", "Hello there. How are you?")]
    h.assert_responses_well_formed()
    await settle(h)


@pytest.mark.parametrize("change", ["instructions", "item"])
async def test_a_context_change_during_the_pause_is_not_answered_from_the_old_one(change: str) -> None:
    h = Harness()
    await h.speak_to_pause()
    await h.held_reply_ready()
    if change == "instructions":
        h.conversation.instructions = "Answer in French."  # session.update
    else:
        h.conversation.history.add("item_client", "user", "my name is Ada")  # conversation.item.create
    await h.end_turn()
    [done] = await h.done()
    assert done.status == "completed" and len(h.of(ev.ResponseStarted)) == 1
    assert h.llm is not None
    spoken_from = h.llm.calls[-1]
    if change == "instructions":
        assert spoken_from[0].content == "Answer in French."
    else:
        assert ("user", "my name is Ada") in [(m.role, m.content) for m in spoken_from]
    assert spoken_from[-1].content == "what time is it"
    h.assert_responses_well_formed()
    await settle(h)


async def test_an_earlier_turn_transcribed_meanwhile_is_in_the_reply_context() -> None:
    h = Harness(stt=FakeSTT(text="what time is it", delay=1.5))
    await h.speak_to_pause()
    await h.live(quiet(200))  # turn 1 ends; its transcript takes a while
    assert len(h.of(ev.SpeechStopped)) == 1
    h.stt.delay = 0.0
    await h.speak_to_pause()  # turn 2 (talking over the reply that waits for turn 1's words)
    await until(lambda: h.llm_calls == 1)
    assert not h.of(ev.TranscriptFinal)  # the held reply was asked before turn 1's words were in
    await until(lambda: bool(h.of(ev.TranscriptFinal)))
    await h.end_turn()
    [done] = await h.done()
    assert done.status == "completed" and len(h.of(ev.ResponseStarted)) == 1
    assert h.llm is not None
    assert [m.role for m in h.llm.calls[-1]] == ["system", "user", "user"]
    assert [role for role, _ in h.history()] == ["user", "user", "assistant"]
    h.assert_responses_well_formed()
    await settle(h)


async def test_an_earlier_transcription_still_running_at_the_end_keeps_events_in_order() -> None:
    h = Harness(stt=FakeSTT(text="what time is it", delay=1.0))
    await h.speak_to_pause()
    await h.live(quiet(200))  # turn 1 ends, still transcribing
    h.stt.delay = 0.0
    await h.speak_to_pause()
    await h.held_reply_ready()
    await h.end_turn()  # turn 1's transcript is not in yet
    [done] = await h.done()
    assert done.status == "completed"
    finals = h.of(ev.TranscriptFinal)
    assert [f.item_id for f in finals] == [s.item_id for s in h.of(ev.SpeechStopped)]
    assert len(h.of(ev.ResponseStarted)) == 1
    assert [role for role, _ in h.history()] == ["user", "user", "assistant"]
    h.assert_responses_well_formed()
    await settle(h)


# -- failures ----------------------------------------------------------------------------------


async def test_empty_speculative_transcript_asks_nothing() -> None:
    h = Harness(stt=FakeSTT(text=""))
    await h.speak_to_pause()
    await asyncio.sleep(0.1)
    await h.end_turn()
    await until(lambda: bool(h.of(ev.TranscriptFinal)))
    await asyncio.sleep(0.1)
    assert h.llm_calls == 0 and h.stt.calls == 1
    assert not h.of(ev.ResponseStarted)
    assert h.states() == ["listening", "thinking", "idle"]
    await settle(h)


@pytest.mark.parametrize("speculative_reply", [True, False])
async def test_failed_speculative_transcripts_are_reported_once_and_leak_nothing(
    speculative_reply: bool,
) -> None:
    h = Harness(stt=FakeSTT(fail=EngineError("boom", retryable=True)), speculative_reply=speculative_reply)
    await h.speak_to_pause(400)
    await asyncio.sleep(0.1)
    await h.speak_to_pause(400)  # the first pause's failed transcript is dropped
    await asyncio.sleep(0.1)
    await h.end_turn()
    await until(lambda: bool(h.of(ev.TranscriptFailed)))
    await asyncio.sleep(0.1)
    assert len(h.of(ev.TranscriptFailed)) == 1
    assert h.llm_calls == 0 and not h.of(ev.ResponseStarted)
    await settle(h)


async def test_llm_unreachable_while_held_is_reported_after_release() -> None:
    h = Harness(llm=FakeLLM(fail_before=EngineUnavailable("refused")))
    await h.speak_to_pause()
    await until(lambda: h.llm_calls == 1)
    await asyncio.sleep(0.1)  # the failure is in; the echo waits for the hold
    await h.end_turn()
    [done] = await h.done()
    assert done.status == "completed" and done.text.startswith("Echo mode: I cannot reach")
    assert h.llm_calls == 1
    assert h.before_speech_stopped() == ["SpeechStarted", "StateChanged"]
    kinds = h.kinds()
    assert kinds.index("ResponseStarted") < kinds.index("ConversationError") < kinds.index("ResponseText")
    assert len(h.of(ev.ConversationError)) == 1
    h.assert_responses_well_formed()
    await settle(h)


async def test_llm_failing_mid_stream_while_held_is_retried_by_the_turn() -> None:
    h = Harness(llm=FakeLLM(chunks=("First sentence here. ", "Second one."), fail_after=1))
    await h.speak_to_pause()
    await until(lambda: h.llm_calls == 1)
    await asyncio.sleep(0.2)  # the held reply has failed, silently
    await h.end_turn()
    [done] = await h.done()
    assert done.status == "failed" and h.llm_calls == 2
    assert [e.code for e in h.of(ev.ConversationError)] == ["engine_error"]
    assert h.before_speech_stopped() == ["SpeechStarted", "StateChanged"]
    assert h.states()[-1] == "idle"
    assert h.history()[0] == ("user", "what time is it")  # once, from the turn's own reply
    h.assert_responses_well_formed()
    await settle(h)


async def test_llm_failing_after_release_is_reported_once() -> None:
    h = Harness(llm=FakeLLM(chunks=("First sentence here. ", "Second one."), first_delay=1.0, fail_after=1))
    await h.speak_to_pause()
    await until(lambda: h.llm_calls == 1)
    await h.end_turn()  # released while the LLM has not answered yet
    [done] = await h.done()
    assert done.status == "failed" and h.llm_calls == 1
    assert [e.code for e in h.of(ev.ConversationError)] == ["engine_error"]
    assert h.kinds().index("ResponseStarted") < h.kinds().index("ConversationError")
    assert h.states()[-1] == "idle"
    h.assert_responses_well_formed()
    await settle(h)


async def test_tts_failing_while_held_leaves_no_trace_and_the_turn_reports_it() -> None:
    h = Harness(tts=FakeTTS(ms_per_char=10, fail_before=EngineError("tts down", retryable=True)))
    await h.speak_to_pause()
    await until(lambda: len(h.tts.texts) >= 2)  # both attempts at the first sentence failed
    await asyncio.sleep(0.05)
    await h.end_turn()
    [done] = await h.done()
    assert done.status == "failed" and h.llm_calls == 2
    assert [e.code for e in h.of(ev.ConversationError)] == ["engine_error"]
    assert h.before_speech_stopped() == ["SpeechStarted", "StateChanged"]
    assert not h.of(ev.ResponseAudio)
    h.assert_responses_well_formed()
    await settle(h)


async def test_slow_speculative_transcript_falls_back_without_asking_twice() -> None:
    h = Harness(stt=FakeSTT(text="what time is it", delay=0.6))
    await h.speak_to_pause()
    await h.end_turn()  # the turn ends before the transcript is in
    [done] = await h.done()
    assert done.status == "completed"
    assert h.stt.calls == 1 and h.llm_calls == 1
    assert h.history() == [("user", "what time is it"), ("assistant", "Hello there. How are you?")]
    h.assert_responses_well_formed()
    await settle(h)


# -- shutdown ------------------------------------------------------------------------------------


async def test_aclose_with_a_held_reply_stops_it_and_reports_nothing() -> None:
    h = Harness()
    await h.speak_to_pause()
    await h.held_reply_ready()
    await h.conversation.aclose()
    # Right after aclose returns, nothing of the conversation is still running.
    assert not {t for t in asyncio.all_tasks() - h.tasks_before if t is not asyncio.current_task()}
    assert h.kinds() == ["SpeechStarted"]
    assert h.history() == []
