"""Piper's voice model cut at its decoder: windowed decoding is the whole decode, in pieces."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from hark.config import PiperOptions
from hark.engines.tts._split import CONTEXT, windows
from hark.engines.tts.piper import PiperTTS

SENTENCE = "Paris is sunny and mild today, and you will not need an umbrella."


@pytest.mark.parametrize("frames", [1, 24, 48, 49, 172, 900, 5000])
def test_windows_cover_every_frame_once_and_grow(frames: int) -> None:
    spans = windows(frames)
    assert spans[0][0] == 0 and spans[-1][1] == frames
    assert all(a[1] == b[0] for a, b in pairwise(spans))
    sizes = [end - start for start, end in spans]
    assert all(later >= earlier for earlier, later in pairwise(sizes))
    assert (len(spans) == 1) == (frames <= 48)


@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    return PiperTTS(PiperOptions(noise_scale=0.0, noise_w_scale=0.0))


def test_the_default_voice_is_cut(piper: PiperTTS) -> None:
    assert piper._split is not None  # a fallback to whole-sentence synthesis would hide a regression


def test_windowed_decoding_matches_the_whole_decode(piper: PiperTTS) -> None:
    split = piper._split
    assert split is not None
    latent = split.latent(split.phoneme_ids(SENTENCE)[0], piper._config)
    frames = latent.shape[2]
    assert frames > 4 * (24 + CONTEXT)  # long enough for several windows
    whole = split.decode(latent, 0, frames)
    pieces = [split.decode(latent, start, end) for start, end in windows(frames)]
    assert len(pieces) > 1 and sum(map(len, pieces)) == len(whole)
    difference = np.abs(
        np.frombuffer(b"".join(pieces), "<i2").astype(np.int32) - np.frombuffer(whole, "<i2").astype(np.int32)
    )
    assert difference.max() <= 1  # int16 rounding of float differences ~1e-6


async def test_a_sentence_streams_in_pieces_at_a_sane_level(piper: PiperTTS) -> None:
    pieces = [pcm async for pcm in piper.synthesize(SENTENCE)]
    assert len(pieces) > 1 and all(len(p) % 2 == 0 for p in pieces)
    audio = np.frombuffer(b"".join(pieces), "<i2").astype(np.float32) / 32768.0
    assert 2.0 < len(audio) / piper.sample_rate < 8.0
    # One gain per voice (calibrated at load): loud enough, never clipped flat.
    assert 0.3 < np.abs(audio).max() < 0.999
    assert [p async for p in piper.synthesize("   ")] == []
