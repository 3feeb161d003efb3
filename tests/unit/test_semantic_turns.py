"""Semantic end of turn: the listener asks a turn model at the policy's pauses (scripted model,
loudness VAD, no real audio)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest

from hark.engines.base import Float32Array, Transcript
from hark.errors import EngineError
from hark.pipeline.completeness import Reading
from hark.pipeline.listener import Listener
from hark.pipeline.turns import (
    SEMANTIC_POLICIES,
    WORDS_DOUBT_MS,
    WORDS_WAIT_MS,
    Eagerness,
    SemanticPolicy,
    TurnConfig,
    TurnDetector,
    TurnEvent,
)
from tests.fakes import LoudnessVAD, quiet, tone


@dataclass
class ScriptedTurnModel:
    """Answers the probabilities it is given, in order (the last one repeats); records the
    length of audio it was asked about. ``fail`` raises instead."""

    answers: list[float]
    name: str = "scripted"
    sample_rate: int = 16_000
    fail: bool = False
    asked: list[int] = field(default_factory=list)

    async def end_probability(self, audio: Float32Array) -> float:
        self.asked.append(len(audio))
        if self.fail:
            raise EngineError("injected", engine=self.name)
        return self.answers[min(len(self.asked), len(self.answers)) - 1]

    async def aclose(self) -> None:
        return None


def listener(
    model: ScriptedTurnModel | None, eagerness: Eagerness | None, *, coded_tail_ms: float = 0
) -> Listener:
    config = TurnConfig(start_ms=64, end_silence_ms=300, eagerness=eagerness, coded_tail_ms=coded_tail_ms)
    return Listener(LoudnessVAD(), config, input_rate=24_000, prefix_ms=100, max_turn_s=10, turn_model=model)


async def stop_after(listen: Listener, speech_ms: int, silence_ms: int) -> int | None:
    """Feed speech then silence in 20 ms frames; the ms of silence fed when the turn stopped."""
    for _ in range(speech_ms // 20):
        await listen.push(tone(20))
    for fed in range(20, silence_ms + 1, 20):
        for boundary in await listen.push(quiet(20)):
            if boundary.event is TurnEvent.SPEECH_STOPPED:
                return fed
    return None


async def test_done_at_the_first_pause_ends_the_turn_there() -> None:
    model = ScriptedTurnModel([0.9])
    fed = await stop_after(listener(model, Eagerness.MEDIUM), 600, 3000)
    assert fed is not None and 280 <= fed <= 350, fed  # medium first decides at 300 ms of silence
    assert len(model.asked) == 1
    assert model.asked[0] >= 16_000 * 0.6  # it heard the whole turn so far


async def test_a_coded_tail_asks_one_chunk_sooner() -> None:
    plain, coded = ScriptedTurnModel([0.9]), ScriptedTurnModel([0.9])
    fed_plain = await stop_after(listener(plain, Eagerness.MEDIUM), 600, 3000)
    fed_coded = await stop_after(listener(coded, Eagerness.MEDIUM, coded_tail_ms=32), 600, 3000)
    assert fed_plain is not None and fed_coded is not None
    assert 20 <= fed_plain - fed_coded <= 40, (fed_plain, fed_coded)  # one 32 ms chunk
    assert len(plain.asked) == len(coded.asked) == 1


async def test_not_done_keeps_listening_across_a_long_pause() -> None:
    model = ScriptedTurnModel([0.1])
    fed = await stop_after(listener(model, Eagerness.MEDIUM), 600, 1500)
    assert fed is None  # server_vad would have ended it at 300 ms
    assert len(model.asked) == 3  # asked at 300, 600 and 1200 ms of silence


async def test_not_done_ends_at_the_policy_s_longest_silence() -> None:
    model = ScriptedTurnModel([0.1])
    fed = await stop_after(listener(model, Eagerness.HIGH), 600, 3000)
    assert fed is not None
    assert (
        SEMANTIC_POLICIES[Eagerness.HIGH].max_silence_ms
        <= fed
        < SEMANTIC_POLICIES[Eagerness.HIGH].max_silence_ms + 64
    )


async def test_a_later_decision_can_end_the_turn() -> None:
    model = ScriptedTurnModel([0.2, 0.8])
    fed = await stop_after(listener(model, Eagerness.MEDIUM), 600, 3000)
    assert fed is not None and 580 <= fed < 650, fed
    assert len(model.asked) == 2


async def test_the_stop_is_placed_where_the_silence_began() -> None:
    model = ScriptedTurnModel([0.9])
    listen = listener(model, Eagerness.HIGH)
    stops = []
    for _ in range(30):
        await listen.push(tone(20))
    for _ in range(20):
        stops += [b for b in await listen.push(quiet(20)) if b.event is TurnEvent.SPEECH_STOPPED]
    assert len(stops) == 1
    assert abs(stops[0].audio_ms - 600) <= 40  # the speech lasted 600 ms


async def test_speech_resuming_before_the_decision_point_is_one_turn() -> None:
    model = ScriptedTurnModel([0.9])
    listen = listener(model, Eagerness.LOW)  # decides at 500 ms
    events = []
    for chunk in [tone(400), quiet(160), tone(400), quiet(600)]:
        for i in range(0, len(chunk), 960):
            events += [b.event for b in await listen.push(chunk[i : i + 960])]
    assert events.count(TurnEvent.SPEECH_STARTED) == 1
    assert events.count(TurnEvent.SPEECH_STOPPED) == 1


async def test_a_failing_model_falls_back_to_silence() -> None:
    model = ScriptedTurnModel([0.9], fail=True)
    fed = await stop_after(listener(model, Eagerness.HIGH), 600, 3000)
    assert fed is not None and fed >= SEMANTIC_POLICIES[Eagerness.HIGH].max_silence_ms


async def test_server_vad_never_asks_the_model() -> None:
    model = ScriptedTurnModel([0.0])
    fed = await stop_after(listener(model, None), 600, 1000)
    assert fed is not None and 300 <= fed < 360
    assert model.asked == []


async def test_semantic_without_a_model_ends_on_the_longest_silence() -> None:
    fed = await stop_after(listener(None, Eagerness.HIGH), 600, 3000)
    assert fed is not None and fed >= SEMANTIC_POLICIES[Eagerness.HIGH].max_silence_ms


def test_end_now_only_inside_a_silence() -> None:
    detector = TurnDetector(TurnConfig(chunk_ms=32, start_ms=64, eagerness=Eagerness.AUTO))
    assert detector.end_now() is None
    for _ in range(3):
        detector.push(1.0)
    assert detector.in_speech and detector.end_now() is None  # still speaking
    detector.push(0.0)
    stop = detector.end_now()
    assert stop is not None and stop.event is TurnEvent.SPEECH_STOPPED and stop.chunk_index == 3
    assert not detector.in_speech


@pytest.mark.parametrize("eagerness", list(Eagerness))
def test_every_eagerness_has_a_bounded_policy(eagerness: Eagerness) -> None:
    policy = SEMANTIC_POLICIES[eagerness]
    assert 0 < policy.threshold < 1
    assert list(policy.decide_ms) == sorted(policy.decide_ms)
    assert policy.decide_ms[-1] < policy.max_silence_ms <= 5000
    assert np.isfinite(policy.max_silence_ms)


# The words of the pause: the listener reads the speculative transcript beside the model.


@dataclass
class ScriptedWords:
    """Transcripts for the listener's pauses: ``text`` at once (or after ``delay`` s), or one
    that fails (``fail``); ``None`` with ``none``. Records the pauses it was asked about."""

    text: str
    delay: float = 0.0
    logprob: float | None = None
    fail: bool = False
    none: bool = False
    asked: list[int] = field(default_factory=list)
    made: dict[int, asyncio.Future[Transcript]] = field(default_factory=dict)

    def transcript_at(self, audio_ms: int) -> asyncio.Future[Transcript] | None:
        self.asked.append(audio_ms)
        if self.none:
            return None
        if audio_ms not in self.made:  # one transcription per pause
            self.made[audio_ms] = asyncio.ensure_future(self._transcribe())
        return self.made[audio_ms]

    async def _transcribe(self) -> Transcript:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise EngineError("injected", engine="scripted-stt")
        return Transcript(self.text, logprob=self.logprob)


def worded(
    model: ScriptedTurnModel,
    words: ScriptedWords,
    eagerness: Eagerness,
    min_logprob: float | None = -0.8,
    doubt_ms: float | None = WORDS_DOUBT_MS,
) -> Listener:
    config = TurnConfig(
        start_ms=64,
        end_silence_ms=300,
        eagerness=eagerness,
        words_min_logprob=min_logprob,
        words_doubt_ms=doubt_ms,
    )
    return Listener(
        LoudnessVAD(),
        config,
        input_rate=24_000,
        prefix_ms=100,
        max_turn_s=10,
        turn_model=model,
        transcripts=words,
    )


async def stop_after_words(listen: Listener, speech_ms: int, silence_ms: int) -> int | None:
    """``stop_after`` as a conversation feeds it: the pause's transcript starts when the pause is
    reported, and the event loop turns between frames (so a quick transcript is in by the ask)."""
    assert listen.transcripts is not None
    for _ in range(speech_ms // 20):
        await listen.push(tone(20))
    for fed in range(20, silence_ms + 1, 20):
        for boundary in await listen.push(quiet(20)):
            if boundary.event is TurnEvent.PAUSED:
                listen.transcripts.transcript_at(boundary.audio_ms)
            if boundary.event is TurnEvent.SPEECH_STOPPED:
                return fed
        for _ in range(3):
            await asyncio.sleep(0)
    return None


async def test_unfinished_words_keep_the_turn_open_though_the_model_says_done() -> None:
    model, words = ScriptedTurnModel([0.99]), ScriptedWords("My phone number is 555.")
    fed = await stop_after_words(worded(model, words, Eagerness.MEDIUM), 600, 3000)
    policy = SEMANTIC_POLICIES[Eagerness.MEDIUM]
    assert fed is not None and fed >= policy.max_silence_ms  # only the longest silence ended it
    assert model.asked == []  # the words were in before the first ask: the model was not needed
    assert len(set(words.asked)) == 1  # every ask read the one transcript of this pause


async def test_words_the_recogniser_doubts_keep_the_turn_open_though_the_model_says_done() -> None:
    model, words = ScriptedTurnModel([0.99]), ScriptedWords("I need bags.", logprob=-0.9)
    fed = await stop_after_words(worded(model, words, Eagerness.MEDIUM, doubt_ms=None), 600, 3000)
    assert fed is not None and fed >= SEMANTIC_POLICIES[Eagerness.MEDIUM].max_silence_ms
    assert model.asked == []  # the words were in before the first ask: the model was not needed


async def test_doubted_words_hold_the_turn_only_until_the_doubt_ends() -> None:
    policy = SEMANTIC_POLICIES[Eagerness.MEDIUM]
    release = next(ms for ms in policy.decide_ms if ms >= WORDS_DOUBT_MS)
    model, words = ScriptedTurnModel([0.99]), ScriptedWords("I need bags.", logprob=-0.9)
    fed = await stop_after_words(worded(model, words, Eagerness.MEDIUM), 600, 3000)
    assert fed is not None and release <= fed < policy.max_silence_ms, fed  # not at 300 or 600 ms
    assert len(model.asked) == 1  # asked once, where the doubt no longer held the turn
    unsure = ScriptedTurnModel([0.35])  # the model alone decides there: "not done" holds
    fed = await stop_after_words(worded(unsure, words, Eagerness.MEDIUM), 600, 3000)
    assert fed is not None and fed >= policy.max_silence_ms, fed


async def test_unfinished_words_hold_past_the_doubt() -> None:
    model, words = ScriptedTurnModel([0.99]), ScriptedWords("My phone number is", logprob=-0.9)
    fed = await stop_after_words(worded(model, words, Eagerness.MEDIUM, min_logprob=None), 600, 3000)
    assert fed is not None and fed >= SEMANTIC_POLICIES[Eagerness.MEDIUM].max_silence_ms


async def test_doubt_is_a_setting() -> None:
    for bar, ends_at_once in ((None, True), (-1.0, True), (-0.8, False)):
        model, words = ScriptedTurnModel([0.99]), ScriptedWords("I need bags.", logprob=-0.9)
        fed = await stop_after_words(worded(model, words, Eagerness.MEDIUM, bar), 600, 3000)
        assert fed is not None and (fed < 400) is ends_at_once, (bar, fed)


async def test_confident_words_end_the_turn_as_before() -> None:
    model, words = ScriptedTurnModel([0.99]), ScriptedWords("Tell me a joke.", logprob=-0.3)
    fed = await stop_after_words(worded(model, words, Eagerness.MEDIUM), 600, 3000)
    assert fed is not None and fed < 400, fed


async def test_complete_words_and_an_unsure_model_end_the_turn() -> None:
    model, words = ScriptedTurnModel([0.35]), ScriptedWords("What time is it?")
    fed = await stop_after_words(worded(model, words, Eagerness.MEDIUM), 600, 3000)
    assert fed is not None and fed < 400, fed  # the first ask, at 300 ms
    assert len(model.asked) == 1


async def test_an_unsure_model_alone_does_not_end_the_turn() -> None:
    for words in (ScriptedWords("I was thinking"), ScriptedWords("", none=True)):
        model = ScriptedTurnModel([0.35])
        fed = await stop_after_words(worded(model, words, Eagerness.MEDIUM), 600, 1500)
        assert fed is None, words  # no words that read complete: "not done" as before


async def test_a_sure_not_done_holds_against_complete_words() -> None:
    model, words = ScriptedTurnModel([0.05]), ScriptedWords("Send it to John.")
    fed = await stop_after_words(worded(model, words, Eagerness.MEDIUM), 600, 1500)
    assert fed is None
    assert len(model.asked) == 3


async def test_without_words_the_model_alone_decides() -> None:
    for words in (ScriptedWords("", none=True), ScriptedWords("My phone number is", fail=True)):
        model = ScriptedTurnModel([0.9])
        fed = await stop_after_words(worded(model, words, Eagerness.MEDIUM), 600, 3000)
        assert fed is not None and fed < 400, (words, fed)


async def test_a_slow_transcript_is_waited_for() -> None:
    model, words = ScriptedTurnModel([0.99]), ScriptedWords("My phone number is", delay=0.2)
    fed = await stop_after_words(worded(model, words, Eagerness.HIGH), 600, 3000)
    assert fed is not None and fed >= SEMANTIC_POLICIES[Eagerness.HIGH].max_silence_ms


async def test_the_words_are_asked_for_at_the_pause_where_the_silence_began() -> None:
    model, words = ScriptedTurnModel([0.1]), ScriptedWords("Um.")
    listen = worded(model, words, Eagerness.HIGH)
    paused = []
    for chunk in [tone(600), quiet(400), tone(400), quiet(400)]:
        for i in range(0, len(chunk), 960):
            paused += [
                b.audio_ms for b in await listen.push(chunk[i : i + 960]) if b.event is TurnEvent.PAUSED
            ]
    assert len(paused) == 2
    assert sorted(set(words.asked)) == paused


async def test_high_ends_early_only_when_words_and_model_agree() -> None:
    agree = ScriptedTurnModel([0.9])
    fed = await stop_after_words(worded(agree, ScriptedWords("Paris."), Eagerness.HIGH), 600, 3000)
    assert fed is not None and fed < 160, fed  # the early ask, at 128 ms
    unknown = ScriptedTurnModel([0.9])
    fed = await stop_after_words(worded(unknown, ScriptedWords("Paris"), Eagerness.HIGH), 600, 3000)
    assert fed is not None and 160 <= fed < 200, fed  # no closing stop: the model alone, at 160 ms
    unsure = ScriptedTurnModel([0.35])
    fed = await stop_after_words(worded(unsure, ScriptedWords("Paris."), Eagerness.HIGH), 600, 3000)
    assert fed is not None and 160 <= fed < 200, fed  # unsure: not at the early ask


@pytest.mark.parametrize(
    ("probability", "words", "ends"),
    [
        (0.99, Reading.UNFINISHED, False),
        (0.99, Reading.DOUBTED, False),
        (0.4, Reading.DOUBTED, False),
        (0.99, Reading.UNKNOWN, True),
        (0.99, Reading.COMPLETE, True),
        (0.4, Reading.COMPLETE, True),
        (0.4, Reading.UNKNOWN, False),
        (0.2, Reading.COMPLETE, False),
        (0.0, Reading.UNFINISHED, False),
    ],
)
def test_how_words_and_model_combine(probability: float, words: Reading, ends: bool) -> None:
    policy = SEMANTIC_POLICIES[Eagerness.MEDIUM]
    assert policy.ends(300, probability, words) is ends


@pytest.mark.parametrize(
    ("ask_ms", "words", "doubt_ms", "weighed"),
    [
        (600, Reading.DOUBTED, 1000, Reading.DOUBTED),
        (1000, Reading.DOUBTED, 1000, Reading.UNKNOWN),
        (1200, Reading.DOUBTED, 1000, Reading.UNKNOWN),
        (1200, Reading.DOUBTED, None, Reading.DOUBTED),
        (1200, Reading.UNFINISHED, 1000, Reading.UNFINISHED),
        (1200, Reading.COMPLETE, 1000, Reading.COMPLETE),
    ],
)
def test_doubted_words_weigh_nothing_from_the_doubts_end(
    ask_ms: float, words: Reading, doubt_ms: float | None, weighed: Reading
) -> None:
    assert SemanticPolicy.weigh(ask_ms, words, doubt_ms) is weighed


def test_high_asks_nothing_past_the_doubt() -> None:
    """``high`` ends on its longest silence (1000 ms) before any ask weighs doubted words as
    nothing: the end of the doubt changes ``medium`` (1200 ms) and ``low`` (1000 ms) only."""
    for eagerness, release in ((Eagerness.HIGH, None), (Eagerness.MEDIUM, 1200), (Eagerness.LOW, 1000)):
        policy = SEMANTIC_POLICIES[eagerness]
        asks = [ms for ms in policy.decide_ms if ms >= WORDS_DOUBT_MS and ms < policy.max_silence_ms]
        assert (asks[0] if asks else None) == release, eagerness


def test_the_early_ask_needs_both() -> None:
    policy = SEMANTIC_POLICIES[Eagerness.HIGH]
    assert policy.early_ms is not None
    assert policy.ends(policy.early_ms, 0.9, Reading.COMPLETE)
    assert not policy.ends(policy.early_ms, 0.9, Reading.UNKNOWN)
    assert not policy.ends(policy.early_ms, 0.4, Reading.COMPLETE)
    assert not policy.ends(policy.early_ms, 0.9, Reading.DOUBTED)
    assert policy.decide_at(round(policy.early_ms / 32), 32)


@pytest.mark.parametrize("eagerness", list(Eagerness))
def test_the_wait_for_words_is_bounded_by_the_longest_silence(eagerness: Eagerness) -> None:
    policy = SEMANTIC_POLICIES[eagerness]
    for ask in (*([policy.early_ms] if policy.early_ms else []), *policy.decide_ms):
        assert 0 < policy.wait_ms(ask) <= min(WORDS_WAIT_MS, policy.max_silence_ms - ask)


def test_a_sure_not_done_needs_no_words() -> None:
    policy = SEMANTIC_POLICIES[Eagerness.MEDIUM]
    assert not policy.may_end(300, 0.1)  # the listener stops waiting for the transcript
    assert policy.may_end(300, 0.4)  # unsure: complete words would end it
    high = SEMANTIC_POLICIES[Eagerness.HIGH]
    assert high.early_ms is not None and not high.may_end(high.early_ms, 0.4)
