"""Semantic end of turn in a conversation: the words it reads at a pause are the speculation's
transcript, so nothing is transcribed twice (fake STT, scripted turn model, loudness VAD)."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from hark.pipeline import events as ev
from hark.pipeline.turns import Eagerness, TurnConfig
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, fake_conversation, quiet, tone
from tests.unit.test_semantic_turns import ScriptedTurnModel

PIECE = 1920  # 40 ms of PCM16 at 24 kHz
E = TypeVar("E")


async def talk(
    text: str, model: ScriptedTurnModel, silence_ms: int, logprob: float | None = None
) -> tuple[FakeSTT, list[ev.Event]]:
    """600 ms of speech and ``silence_ms`` of silence at real-time pace into a ``semantic_vad``
    (medium) conversation whose STT writes ``text`` (as sure of it as ``logprob`` says)."""
    stt = FakeSTT(text=text, logprob=logprob)
    events: list[ev.Event] = []
    conversation = fake_conversation(
        stt=stt,
        tts=FakeTTS(ms_per_char=1),
        llm=FakeLLM(chunks=("Sure.",)),
        emit=events.append,
        turn=TurnConfig(start_ms=64, eagerness=Eagerness.MEDIUM),
        turn_model=model,
    )
    try:
        for piece in (tone(600), quiet(silence_ms)):
            for offset in range(0, len(piece), PIECE):
                await conversation.push_audio(piece[offset : offset + PIECE])
                await asyncio.sleep(0.04)
        await asyncio.sleep(0.2)
    finally:
        await conversation.aclose()
    return stt, events


def of(events: list[ev.Event], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


async def test_complete_words_end_the_turn_on_the_speculation_s_transcript() -> None:
    stt, events = await talk("What time is it?", ScriptedTurnModel([0.4]), 700)
    assert len(of(events, ev.SpeechStopped)) == 1  # the words and an unsure model ended it
    assert [e.text for e in of(events, ev.TranscriptFinal)] == ["What time is it?"]
    assert stt.calls == 1  # the pause's transcript was the turn's: transcribed once


async def test_unfinished_words_keep_a_semantic_turn_open() -> None:
    model = ScriptedTurnModel([0.99])
    stt, events = await talk("My phone number is", model, 1200)
    assert of(events, ev.SpeechStopped) == []  # server_vad would have ended it at 300 ms
    assert stt.calls == 1  # one transcript for the pause, read at every ask
    assert model.asked == []  # the words were in before the first ask


async def test_words_the_recogniser_doubts_keep_a_semantic_turn_open() -> None:
    model = ScriptedTurnModel([0.99])
    stt, events = await talk("I need bags.", model, 1200, logprob=-0.9)  # tiny.en for "I need eggs,"
    assert of(events, ev.SpeechStopped) == []  # neither the words nor the model alone end it
    assert stt.calls == 1
    assert model.asked == []


def test_the_doubt_is_a_server_setting() -> None:
    from hark.app import conversation_config
    from hark.config import Settings

    assert conversation_config(Settings()).turn.words_min_logprob == -0.8
    settings = Settings.model_validate({"vad": {"semantic_min_logprob": None}})
    assert conversation_config(settings).turn.words_min_logprob is None
    assert conversation_config(Settings()).turn.words_doubt_ms == 1000
    settings = Settings.model_validate({"vad": {"semantic_doubt_ms": None}})
    assert conversation_config(settings).turn.words_doubt_ms is None
