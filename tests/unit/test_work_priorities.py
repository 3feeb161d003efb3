"""How a conversation marks the engine work it asks for (hark.priority), and how it reports
saturation (load, not a fault) so that the session never counts it as a failed turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from hark.engines.base import Transcript
from hark.errors import EngineSaturated
from hark.pipeline import events as ev
from hark.priority import Priority, Work, current_work
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, fake_conversation, quiet, tone


class MarkedSTT(FakeSTT):
    """Notes each call's mark: its class when called, and the mark itself (it may be promoted)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.marks: list[tuple[Priority, Work]] = []

    async def transcribe(
        self, audio: Any, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        work = current_work()
        self.marks.append((work.priority, work))
        return await super().transcribe(audio, language=language, deterministic=deterministic)


class MarkedTTS(FakeTTS):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.marks: list[Work] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.marks.append(current_work())
        async for pcm in super().synthesize(text):
            yield pcm


async def speak_live(conversation: Any, *pieces: bytes) -> None:
    for piece in pieces:
        for offset in range(0, len(piece), 1920):
            await conversation.push_audio(piece[offset : offset + 1920])
            await asyncio.sleep(0.04)


async def until(events: list[ev.Event], kind: type, timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := [e for e in events if isinstance(e, kind)]):
            await asyncio.sleep(0.01)
    return found[-1]


async def test_partials_speculation_and_the_spoken_reply_are_marked_by_priority() -> None:
    stt, tts = MarkedSTT(text="what time is it", delay=0.05), MarkedTTS(ms_per_char=10)
    events: list[ev.Event] = []
    conversation = fake_conversation(
        stt=stt, tts=tts, llm=FakeLLM(chunks=("It is noon.",)), emit=events.append, partial_interval_ms=200
    )
    try:
        await speak_live(conversation, tone(900), quiet(500))
        done = await until(events, ev.ResponseDone)
        assert done.status == "completed"
        seen = [priority for priority, _ in stt.marks]
        assert Priority.PARTIAL in seen  # interim transcripts while the user spoke
        # Interim transcripts decode deterministically; the speculative one may be the turn's
        # final transcript, so it keeps the engine's full decode, as the final one does.
        assert [d for d, p in zip(stt.deterministic, seen, strict=True) if p is Priority.PARTIAL] == [
            True
        ] * seen.count(Priority.PARTIAL)
        assert not any(d for d, p in zip(stt.deterministic, seen, strict=True) if p is not Priority.PARTIAL)
        # The transcription started at the pause the turn ended on: speculative when it was
        # asked for, promoted to FINAL when the turn ended there (it is the final transcript).
        speculative = [work for priority, work in stt.marks if priority is Priority.SPECULATIVE]
        assert speculative and speculative[-1].priority is Priority.FINAL
        assert any(isinstance(e, ev.TranscriptFinal) for e in events)
        # The reply that was spoken: its speech is FINAL work (a held reply, promoted on release).
        assert tts.marks and all(work.priority is Priority.FINAL for work in tts.marks)
    finally:
        await conversation.aclose()


async def test_a_saturated_final_transcript_is_reported_as_load_not_failure() -> None:
    stt = MarkedSTT(fail=EngineSaturated("the engine workers are saturated", engine="pool"))
    events: list[ev.Event] = []
    conversation = fake_conversation(
        stt=stt, tts=FakeTTS(), llm=FakeLLM(), emit=events.append, speculative_transcript=False
    )
    try:
        await speak_live(conversation, tone(600), quiet(400))
        failed = await until(events, ev.TranscriptFailed)
        assert failed.saturated is True
        assert [priority for priority, _ in stt.marks] == [Priority.FINAL]
    finally:
        await conversation.aclose()


async def test_a_reply_that_fails_for_load_says_so() -> None:
    tts = FakeTTS(fail_before=EngineSaturated("queue full", engine="pool"))
    events: list[ev.Event] = []
    conversation = fake_conversation(
        stt=FakeSTT(), tts=tts, llm=FakeLLM(), emit=events.append, speculative_transcript=False
    )
    try:
        await speak_live(conversation, tone(600), quiet(400))
        done = await until(events, ev.ResponseDone)
        assert done.status == "failed" and done.saturated is True
    finally:
        await conversation.aclose()
