"""The offline codec check codes audio as the bench's caller does: frame for frame, delayed by
libopus's look-ahead and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("aiortc")

from hark.bench.opus_vad import LOOK_AHEAD_SAMPLES, opus_round_trip
from hark.bench.webrtc import CALL_RATE


def test_round_trip_keeps_the_length_and_lags_by_the_look_ahead() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(CALL_RATE // 2) / CALL_RATE
    burst = rng.normal(0, 4_000, t.size) * np.exp(-((t - 0.25) ** 2) / 0.002)  # broadband
    pcm = burst.astype("<i2").tobytes()
    coded = np.frombuffer(opus_round_trip(pcm), dtype="<i2").astype(np.float64)
    assert coded.size == t.size  # 25 frames of 20 ms in, 25 out
    lags = range(0, 2 * LOOK_AHEAD_SAMPLES)
    n = t.size - 2 * LOOK_AHEAD_SAMPLES
    best = max(lags, key=lambda k: float(np.dot(burst[:n], coded[k : k + n])))
    assert abs(best - LOOK_AHEAD_SAMPLES) <= 2


def test_browser_coding_keeps_the_length_and_the_same_look_ahead() -> None:
    from hark.bench.opus_vad import browser_round_trip

    rng = np.random.default_rng(5)
    t = np.arange(CALL_RATE // 2) / CALL_RATE
    burst = rng.normal(0, 4_000, t.size) * np.exp(-((t - 0.25) ** 2) / 0.002)
    coded = np.frombuffer(browser_round_trip(burst.astype("<i2").tobytes()), dtype="<i2").astype(np.float64)
    assert coded.size == t.size
    lags = range(0, 2 * LOOK_AHEAD_SAMPLES)
    n = t.size - 2 * LOOK_AHEAD_SAMPLES
    best = max(lags, key=lambda k: float(np.dot(burst[:n], coded[k : k + n])))
    assert abs(best - LOOK_AHEAD_SAMPLES) <= 2
