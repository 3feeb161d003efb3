"""Smart Turn v3.2 with the real model: its features, its batching, and a semantic turn through
the real listening path (Silero VAD) on espeak-ng speech."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor

from hark.bench.turns_timed import TimedModel
from hark.engines.turn.log_mel import log_mel
from hark.engines.turn.smart_turn import SmartTurn, model_input
from hark.engines.vad.silero import SileroVAD
from hark.errors import EngineError
from hark.pipeline.listener import Listener
from hark.pipeline.turns import Eagerness, TurnConfig, TurnEvent
from tests.speech import silence, speak

pytestmark = pytest.mark.slow


def noise(seconds: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(16_000 * seconds)) * 0.1).astype(np.float32)


def test_features_equal_faster_whispers_log_mel() -> None:
    audio = noise(8, 1)
    reference = FeatureExtractor(feature_size=80)(audio, padding=0)
    ours = log_mel(audio, normalise=False)
    assert ours.shape == (80, 800)
    np.testing.assert_allclose(ours, reference[:, :800], atol=1e-5)


def test_model_input_keeps_the_last_eight_seconds_and_pads_in_front() -> None:
    long = noise(10, 2)
    np.testing.assert_array_equal(model_input(long), model_input(long[-8 * 16_000 :]))
    short = noise(1, 3)
    padded = np.concatenate([np.zeros(7 * 16_000, dtype=np.float32), short])
    np.testing.assert_array_equal(model_input(short), log_mel(padded))


async def test_concurrent_decisions_batch_to_the_same_answers() -> None:
    model = SmartTurn()
    try:
        clips = [noise(1 + i, 10 + i) for i in range(4)]
        alone = [await model.end_probability(clip) for clip in clips]
        together = await asyncio.gather(*(model.end_probability(clip) for clip in clips))
        np.testing.assert_allclose(together, alone, atol=1e-4)
        assert all(0.0 <= p <= 1.0 for p in alone)
    finally:
        await model.aclose()


def test_a_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="cannot load the turn model"):
        SmartTurn(tmp_path / "nothing.onnx")


async def test_a_semantic_turn_through_the_real_listening_path() -> None:
    vad, model = SileroVAD(), TimedModel(SmartTurn())
    listener = Listener(
        vad,
        TurnConfig(eagerness=Eagerness.HIGH),
        input_rate=24_000,
        prefix_ms=300,
        max_turn_s=30,
        turn_model=model,
    )
    speech = speak("Paris.")
    pcm = silence(400) + speech + silence(1500)
    boundaries, stopped_at_ms = [], None
    try:
        for i in range(0, len(pcm), 960):
            for boundary in await listener.push(pcm[i : i + 960]):
                boundaries.append(boundary)
                if boundary.event is TurnEvent.SPEECH_STOPPED:
                    stopped_at_ms = (i + 960) / 2 / 24  # audio fed when the turn ended
    finally:
        await model.aclose()
        await vad.aclose()
    events = [b.event for b in boundaries]
    assert events.count(TurnEvent.SPEECH_STARTED) == 1
    assert events.count(TurnEvent.SPEECH_STOPPED) == 1
    assert model.seconds, "the turn model was never asked"
    # The model, not the longest silence (800 ms for high), ended it: audio time, not wall time.
    speech_end_ms = 400 + len(speech) / 2 / 24
    assert stopped_at_ms is not None and stopped_at_ms < speech_end_ms + 600, (stopped_at_ms, speech_end_ms)
    print(f"\n  {len(model.seconds)} decision(s), {1000 * max(model.seconds):.0f} ms at most")
