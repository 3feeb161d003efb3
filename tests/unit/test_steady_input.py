"""The STT input is the same whatever leading silence the turn began after."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from hark.engines.stt.steady import SteadyConfig, audible_span, steady_input
from hark.pipeline.listener import Listener
from hark.pipeline.turns import TurnConfig, TurnEvent
from tests.speech import silence, speak

RATE = 16_000
OFFSETS_MS = (500, 505, 516, 527, 4010)
QUESTION = "What is the capital of France?"


def question() -> np.ndarray:
    return np.frombuffer(speak(QUESTION, rate=RATE), dtype="<i2").astype(np.float32) / 32768


def test_shifted_copies_give_the_same_input() -> None:
    speech = question()
    prepared = [
        steady_input(np.concatenate([np.zeros(RATE * ms // 1000, np.float32), speech]), RATE)
        for ms in OFFSETS_MS
    ]
    for other in prepared[1:]:
        np.testing.assert_array_equal(other, prepared[0])


def test_lead_and_tail_are_the_configured_silence() -> None:
    speech = question()
    config = SteadyConfig(lead_ms=100, tail_ms=300, keep_ms=0)
    padded = np.concatenate([np.zeros(7_777, np.float32), speech, np.zeros(999, np.float32)])
    out = steady_input(padded, RATE, config)
    span = audible_span(out, RATE, config)
    assert span is not None
    assert span[0] == RATE // 10
    assert len(out) - span[1] == RATE * 3 // 10


def test_silence_and_noise_only_are_left_alone() -> None:
    quiet = np.zeros(RATE, np.float32)
    assert steady_input(quiet, RATE) is quiet
    hiss = (np.random.default_rng(1).standard_normal(RATE) * 1e-3).astype(np.float32)  # -60 dBFS
    assert steady_input(hiss, RATE) is hiss


async def _cut(pcm: bytes) -> np.ndarray:
    """The turn's audio as the server cuts it (24 kHz in, Silero VAD, 32 ms grid, 300 ms prefix)."""
    from hark.engines.vad.silero import SileroVAD

    vad = SileroVAD()
    try:
        listener = Listener(vad, TurnConfig(), input_rate=24_000, prefix_ms=300, max_turn_s=30)
        for start in range(0, len(pcm), 960):
            for boundary in await listener.push(pcm[start : start + 960]):
                if boundary.event is TurnEvent.SPEECH_STOPPED:
                    return listener.take_utterance()
    finally:
        await vad.aclose()
    pytest.fail("no turn ended")


def test_grid_cuts_of_shifted_turns_become_the_same_input() -> None:
    """Cut on the VAD's grid the copies differ (the bug); prepared they are the same samples
    (24 kHz → 16 kHz keeps whole-sample shifts for these offsets) or within float rounding."""
    speech = speak(QUESTION)
    cuts = [asyncio.run(_cut(silence(ms) + speech + silence(800))) for ms in OFFSETS_MS]
    assert len({c.tobytes() for c in cuts}) > 1
    prepared = [steady_input(c, RATE) for c in cuts]
    for other in prepared[1:]:
        assert len(other) == len(prepared[0])
        np.testing.assert_allclose(other, prepared[0], atol=1e-5)
