"""The human-speech part of the turn bench: which RTTM moments are inner pauses and turn ends,
and what the model hears at each (the model's answers are the bench's to report)."""

from __future__ import annotations

import numpy as np

from hark.bench.turns_human import RATE, Point, heard, points, read_rttm, summarise

RTTM = "\n".join(
    f"SPEAKER sample 1 {start:.3f} {end - start:.3f} <NA> <NA> {who} <NA> <NA>"
    for who, start, end in (
        ("A", 0.0, 2.0),
        ("A", 2.5, 4.0),  # a 500 ms pause inside A's turn
        ("B", 4.1, 6.0),  # A's turn ends at 4.0; B starts 100 ms later
        ("A", 5.9, 7.0),  # overlaps B's end: B's turn ends at 6.0, nothing of silence heard
        ("A", 7.1, 8.0),  # a 100 ms pause: too short to count
        ("B", 8.5, 9.0),  # the last stretch: nobody follows, no point
    )
)


def test_inner_pauses_and_turn_ends_from_the_rttm() -> None:
    found = [
        (p.kind, p.speaker, p.turn_start_s, p.stop_s, round(p.heard_until_s, 3))
        for p in points(read_rttm(RTTM))
    ]
    assert found == [
        ("inner_pause", "A", 0.0, 2.0, 2.2),
        ("turn_end", "A", 0.0, 4.0, 4.1),
        ("turn_end", "B", 4.1, 6.0, 6.0),
        ("turn_end", "A", 5.9, 8.0, 8.2),
    ]


def test_the_model_hears_the_turn_with_its_prefix() -> None:
    audio = np.zeros(10 * RATE, dtype=np.float32)
    clip = heard(audio, Point("turn_end", "A", 5.9, 8.0, 8.2))
    assert abs(len(clip) - (8.2 - 5.6) * RATE) <= 1


def test_summary_counts_done_per_eagerness_threshold() -> None:
    pause, end = Point("inner_pause", "A", 0, 2, 2.2), Point("turn_end", "A", 0, 4, 4.2)
    out = summarise([(pause, 0.6), (pause, 0.2), (end, 0.8), (end, 0.65)])
    assert (out["inner_pauses"], out["turn_ends"]) == (2, 2)
    assert out["semantic_high"] == {
        "threshold": 0.5,
        "done_at_inner_pauses": "1/2",
        "done_at_turn_ends": "2/2",
        "done_at_turn_end_after_silences": "2/2",
    }
    assert out["semantic_low"] == {
        "threshold": 0.7,
        "done_at_inner_pauses": "0/2",
        "done_at_turn_ends": "1/2",
        "done_at_turn_end_after_silences": "1/2",
    }
    assert "too small to decide a default" in out["speech"]


def test_a_silence_inside_a_stretch_with_nobody_else_talking_is_an_inner_pause() -> None:
    stretches = read_rttm(RTTM)
    found = points(stretches, [(1.0, 1.3), (5.0, 5.4), (9.5, 9.8)])
    inner = [(p.speaker, p.stop_s, round(p.heard_until_s, 3)) for p in found if p.kind == "inner_pause"]
    # 5.0-5.4 lies in B's stretch with nobody else: a pause; 9.5 is after every stretch.
    assert inner == [("A", 1.0, 1.2), ("A", 2.0, 2.2), ("B", 5.0, 5.2)]
