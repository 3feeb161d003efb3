"""The listening path's causal resampler: nothing held back, exact lengths, clean speech band."""

from __future__ import annotations

from math import gcd

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hark.audio import AudioFormatError, pcm16_to_float
from hark.audio.polyphase import DEFAULT_TAPS, SCRATCH_SAMPLES, CausalResampler

RATES = [8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000]


def tones(rate: int, seconds: float, freqs: list[float], delay_s: float = 0.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate - delay_s
    return sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)


@pytest.mark.parametrize("in_rate", [8_000, 24_000, 44_100, 48_000])
def test_tones_in_the_speech_band_come_through_clean(in_rate: int) -> None:
    out_rate = 16_000
    freqs = [300.0, 1_000.0, 0.3 * min(in_rate, out_rate)]  # up to 60 % of the lower Nyquist
    audio = tones(in_rate, 1.0, freqs).astype(np.float32)
    out = CausalResampler(in_rate, out_rate).process(audio)
    up, down = out_rate // gcd(in_rate, out_rate), in_rate // gcd(in_rate, out_rate)
    taps = DEFAULT_TAPS * max(1, round(down / up))
    delay = (up * taps - 1) / 2 / (up * in_rate)  # the FIR's group delay
    expected = tones(out_rate, 1.0, freqs, delay)
    settled = slice(100, len(out) - 10)
    error = out[settled] - expected[settled]
    snr_db = 10 * np.log10(np.mean(expected[settled] ** 2) / np.mean(error**2))
    print(f"[polyphase] {in_rate} -> {out_rate}: SNR {snr_db:.1f} dB")
    assert snr_db > 40


def test_frequencies_above_the_new_nyquist_are_filtered_not_folded() -> None:
    audio = tones(24_000, 1.0, [10_000.0]).astype(np.float32)  # would alias to 6 kHz at 16 kHz
    out = CausalResampler(24_000, 16_000).process(audio)
    rms = float(np.sqrt(np.mean(out[100:] ** 2)))
    print(f"[polyphase] 10 kHz tone at 24 kHz -> 16 kHz: rms {rms:.4f} of 0.707")
    assert rms < 0.01


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.sampled_from(RATES),
    st.sampled_from(RATES),
    st.lists(st.integers(min_value=0, max_value=2_000), min_size=1, max_size=12),
)
def test_every_output_is_emitted_as_soon_as_its_input_has_arrived(
    in_rate: int, out_rate: int, sizes: list[int]
) -> None:
    rng = np.random.default_rng(len(sizes))
    audio = rng.uniform(-1, 1, sum(sizes)).astype(np.float32)
    streamed = CausalResampler(in_rate, out_rate)
    pieces = []
    fed = 0
    for size in sizes:
        expected = streamed.output_for(size)
        pieces.append(streamed.process(audio[fed : fed + size]))
        assert len(pieces[-1]) == expected
        fed += size
        # Output n exists once input floor(n * in / out) has: ceil(fed * out / in) of them, exactly.
        assert sum(len(p) for p in pieces) == -(-fed * out_rate // in_rate)
    whole = CausalResampler(in_rate, out_rate).process(audio)
    np.testing.assert_allclose(np.concatenate(pieces) if pieces else whole, whole, atol=1e-5)


@pytest.mark.parametrize("in_rate", [24_000, 44_100, 8_000])
def test_an_input_longer_than_the_kept_buffer_between_frames_changes_nothing(in_rate: int) -> None:
    """The resampler keeps one buffer from call to call, sized for frames; a long append gets a
    buffer of its own for that call, and the frames after it go on from the right inputs."""
    sizes = [480, 3, SCRATCH_SAMPLES * 3 + 5, 480, 960, SCRATCH_SAMPLES, 1, 480]
    audio = np.random.default_rng(3).uniform(-1, 1, sum(sizes)).astype(np.float32)
    streamed = CausalResampler(in_rate, 16_000)
    pieces, fed = [], 0
    for size in sizes:
        pieces.append(streamed.process(audio[fed : fed + size]))
        fed += size
    whole = CausalResampler(in_rate, 16_000).process(audio)
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)


def test_matching_rates_pass_through_and_bad_rates_are_refused() -> None:
    audio = np.arange(10, dtype=np.float32)
    assert CausalResampler(16_000, 16_000).process(audio) is audio
    for bad in [(0, 16_000), (16_000, -1)]:
        with pytest.raises(AudioFormatError):
            CausalResampler(*bad)


@settings(max_examples=100, deadline=None, database=None)
@given(
    st.sampled_from(RATES),
    st.sampled_from(RATES),
    st.lists(st.integers(min_value=0, max_value=2_000), min_size=1, max_size=8),
)
def test_pcm16_in_gives_what_converting_first_gives(in_rate: int, out_rate: int, sizes: list[int]) -> None:
    rng = np.random.default_rng(sum(sizes))
    pcm = rng.integers(-32768, 32768, sum(sizes)).astype("<i2")
    as_float = CausalResampler(in_rate, out_rate)
    as_pcm16 = CausalResampler(in_rate, out_rate, pcm16=True)
    offset = 0
    for i, size in enumerate(sizes):
        piece = pcm[offset : offset + size]
        offset += size
        expected = as_float.process(pcm16_to_float(piece.tobytes()))
        got = as_pcm16.process(piece.tobytes() if i % 2 else piece)  # bytes or an int16 array
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)  # scaling by 2**-15 is exact


@pytest.mark.parametrize("in_rate", [24_000, 48_000, 8_000])
def test_frames_through_the_kept_buffer_many_times_over_give_what_floats_give(in_rate: int) -> None:
    """The kept inputs slide along the buffer from call to call and move back to its start when
    a frame no longer fits; the PCM16 path leaves the samples past the input as they were (they
    meet only the zero coefficients of outputs it returns). Loud frames, then silence, in the
    listener's sizes: every output the same as the float path's, which zeroes them."""
    rng = np.random.default_rng(5)
    as_float = CausalResampler(in_rate, 16_000)
    as_pcm16 = CausalResampler(in_rate, 16_000, pcm16=True)
    frame = in_rate // 50
    for i in range(400):
        loud = 32767 if (i // 40) % 2 == 0 else 0
        piece = rng.integers(-loud, loud + 1, frame * (1 + i % 2) + (i % 7 == 0)).astype("<i2")
        expected = as_float.process(pcm16_to_float(piece.tobytes()))
        np.testing.assert_array_equal(as_pcm16.process(piece.tobytes()), expected)


def test_a_pcm16_resampler_refuses_float_samples_and_a_float_one_bytes() -> None:
    with pytest.raises(TypeError):
        CausalResampler(24_000, 16_000, pcm16=True).process(np.zeros(10, dtype=np.float32))
    with pytest.raises(TypeError):
        CausalResampler(24_000, 16_000).process(b"\x00\x00")
