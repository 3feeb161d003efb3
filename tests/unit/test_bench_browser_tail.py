"""The browser-tail bench's pure parts: the fake microphone's layout, the encoded frames put in
order, each sentence found in the decoded audio to the sample, and the cuts around it."""

from __future__ import annotations

import numpy as np
import pytest

from hark.bench.browser_tail import (
    FRAME_SAMPLES,
    LEADS_MS,
    TAIL_MS,
    align,
    cut,
    describe,
    find,
    intact,
    layout,
    match,
    ordered_payloads,
    summary,
)
from hark.bench.webrtc import CALL_RATE


def _noise(samples: int, seed: int, scale: float = 4_000.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, samples)


def _pcm(audio: np.ndarray) -> bytes:
    return bytes(np.clip(audio, -32768, 32767).astype("<i2").tobytes())


def test_layout_puts_each_sentence_where_it_says_at_different_frame_phases() -> None:
    sentences = [_pcm(_noise(12_000 + 1_000 * i, i)) for i in range(3)]  # 0.5-0.58 s at 24 kHz
    plan = layout(sentences)
    audio = np.frombuffer(plan.pcm48, dtype="<i2")
    assert plan.lengths == tuple(len(s) for s in sentences)  # twice the samples at twice the rate
    for start, length in zip(plan.starts, plan.lengths, strict=True):
        assert not audio[start - 2_000 : start - 50].any()  # silence before (resampler ringing aside)
        assert np.abs(audio[start + 100 : start + length - 100]).mean() > 1_000
    assert len({start % FRAME_SAMPLES for start in plan.starts}) == len(plan.starts)


def test_frames_come_in_timestamp_order_across_the_wrap_with_gaps_counted() -> None:
    first = 2**32 - 2 * FRAME_SAMPLES
    stamps = [first + k * FRAME_SAMPLES for k in (0, 2, 1, 3, 5)]  # wraps at k = 2; k = 4 lost
    frames = [(ts % 2**32, bytes([k])) for k, ts in enumerate(stamps)]
    payloads, missing = ordered_payloads(frames)
    assert payloads == [bytes([0]), bytes([2]), bytes([1]), bytes([3]), bytes([4])]
    assert missing == 1
    assert ordered_payloads([]) == ([], 0)


@pytest.mark.parametrize("offset", [0, 1, 7, 12_345, 40_001])
def test_align_finds_the_reference_to_the_sample(offset: int) -> None:
    reference = _noise(9_600, 1)
    signal = _noise(96_000, 2, scale=300.0)
    signal[offset : offset + reference.size] += reference * 0.5  # quieter, as a gain control may
    assert align(_pcm(signal), _pcm(reference)) == offset


def test_align_refuses_a_reference_longer_than_the_audio() -> None:
    with pytest.raises(ValueError, match="longer"):
        align(_pcm(_noise(100, 1)), _pcm(_noise(200, 2)))


def test_align_removes_exactly_the_encoder_s_look_ahead() -> None:
    """So the look-ahead is the one delay the bench has to put back (``LOOK_AHEAD_SAMPLES``)."""
    pytest.importorskip("av")
    from hark.bench.opus_vad import LOOK_AHEAD_SAMPLES, browser_round_trip

    burst = np.zeros(CALL_RATE)
    burst[20_000:29_600] = _noise(9_600, 5)
    coded = browser_round_trip(_pcm(burst))
    assert abs(align(coded, _pcm(burst[19_040:30_560])) - 19_040 - LOOK_AHEAD_SAMPLES) <= 2


def test_find_takes_the_next_loop_when_the_best_match_has_no_room_for_the_lead() -> None:
    reference = _noise(4_800, 3)
    signal = np.zeros(6 * CALL_RATE)
    signal[1_000 : 1_000 + reference.size] = reference  # too near the start to cut a lead
    signal[200_000 : 200_000 + reference.size] = reference * 0.9  # the loop's next pass
    assert find(_pcm(signal), _pcm(reference)) == 200_000
    signal[1_000 : 1_000 + reference.size] = 0
    signal[100_000 : 100_000 + reference.size] = reference
    assert find(_pcm(signal), _pcm(reference)) == 100_000


def test_match_is_one_up_to_gain_and_poor_where_samples_were_lost() -> None:
    reference = _noise(9_600, 4)
    audio = np.concatenate([np.zeros(1_000), reference * 0.3, np.zeros(1_000)])
    assert match(_pcm(audio), 1_000, _pcm(reference)) == pytest.approx(1.0, abs=1e-3)
    gapped = np.concatenate(
        [np.zeros(1_000), reference[:4_000] * 0.3, reference[4_480:] * 0.3, np.zeros(1_480)]
    )
    assert match(_pcm(gapped), 1_000, _pcm(reference)) < 0.9  # 10 ms lost inside the sentence
    assert match(_pcm(audio), audio.size - 10, _pcm(reference)) == 0.0  # runs off the end


def test_intact_holds_through_a_gain_change_and_not_through_lost_samples() -> None:
    reference = _noise(9_600, 6)
    shaped = reference * np.linspace(0.2, 1.5, reference.size)  # a gain control at work
    audio = np.concatenate([np.zeros(5_000), shaped, np.zeros(5_000)])
    assert intact(_pcm(audio), 5_000, _pcm(reference))
    gapped = np.concatenate([np.zeros(5_000), shaped[:4_000], shaped[4_480:], np.zeros(5_480)])
    assert not intact(_pcm(gapped), 5_000, _pcm(reference))  # 10 ms lost inside the sentence
    assert not intact(_pcm(audio), audio.size - 100, _pcm(reference))  # runs off the end


def test_a_cut_starts_the_sentence_after_the_lead_and_the_delay() -> None:
    audio = np.zeros(4 * CALL_RATE)
    at, length = 2 * CALL_RATE, 4_800
    audio[at : at + length] = 1_000
    lead = LEADS_MS[0]
    piece = np.frombuffer(cut(_pcm(audio), at, length, lead, delay=312), dtype="<i2")
    assert np.flatnonzero(piece)[0] == lead * CALL_RATE // 1000 + 312
    assert piece.size == lead * CALL_RATE // 1000 + 312 + length + TAIL_MS * CALL_RATE // 1000
    with pytest.raises(ValueError, match="edge"):
        cut(_pcm(audio), 1_000, length, lead)


def test_describe_reads_the_size_and_the_toc_byte() -> None:
    silk_mono, celt_stereo = bytes([(1 << 3)]) + bytes(79), bytes([(20 << 3) | 0x04]) + bytes(79)
    assert describe([silk_mono, silk_mono, silk_mono, celt_stereo]) == (
        "32.0 kb/s, stereo 25%, silk 3 hybrid 0 celt 1"
    )
    assert describe([]) == "no frames"


def test_summary_gives_median_mean_quartiles_range_and_count() -> None:
    assert summary([0.0, 32.0, 32.0, 64.0]) == (
        "median  +32.0 mean  +32.0 q1   +8.0 q3  +56.0 min   +0.0 max  +64.0 n 4"
    )
    assert summary([float("nan"), 32.0]).endswith("n 1")  # no turn, or a capture with a gap
    assert summary([float("nan")]) == "n 0"
