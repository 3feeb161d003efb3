"""Semantic end of turn: the listener asks a turn model at the policy's pauses (scripted model,
loudness VAD, no real audio)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from hark.engines.base import Float32Array
from hark.errors import EngineError
from hark.pipeline.listener import Listener
from hark.pipeline.turns import SEMANTIC_POLICIES, Eagerness, TurnConfig, TurnDetector, TurnEvent
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


def listener(model: ScriptedTurnModel | None, eagerness: Eagerness | None) -> Listener:
    config = TurnConfig(start_ms=64, end_silence_ms=300, eagerness=eagerness)
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
