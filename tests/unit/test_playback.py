"""Tests for the playback clock and heard-text estimation (hark.pipeline.playback)."""

from __future__ import annotations

import pytest

from hark.pipeline.playback import PlaybackClock, Segment, heard_text

# -- PlaybackClock -----------------------------------------------------------------------------


def test_fresh_clock_has_played_nothing() -> None:
    clock = PlaybackClock()
    assert clock.sent_ms == 0.0
    assert clock.played_ms(0.0) == 0.0
    assert clock.played_ms(1_000.0) == 0.0
    assert clock.wait_s(5.0, lead_ms=0.0) == 0.0


@pytest.mark.parametrize(
    ("now", "expected"),
    [(10.0, 0.0), (10.05, 50.0), (10.1, 100.0), (10.25, 250.0), (10.3, 300.0), (11.0, 300.0), (99.0, 300.0)],
)
def test_played_ms_advances_in_real_time_and_caps_at_sent(now: float, expected: float) -> None:
    clock = PlaybackClock()
    clock.on_send(10.0, 300.0)
    assert clock.sent_ms == 300.0
    assert clock.played_ms(now) == pytest.approx(expected)


def test_sending_ahead_keeps_the_original_anchor() -> None:
    clock = PlaybackClock()
    clock.on_send(0.0, 100.0)
    clock.on_send(0.05, 100.0)  # 50 ms played, 100 sent: still playing, no re-anchor
    clock.on_send(0.08, 100.0)
    assert clock.sent_ms == 300.0
    assert clock.played_ms(0.15) == pytest.approx(150.0)
    assert clock.played_ms(0.29) == pytest.approx(290.0)
    assert clock.played_ms(0.5) == pytest.approx(300.0)


def test_underrun_re_anchors_at_the_new_audio() -> None:
    clock = PlaybackClock()
    clock.on_send(0.0, 100.0)
    assert clock.played_ms(0.5) == pytest.approx(100.0)  # ran dry at 0.1 s
    clock.on_send(0.5, 200.0)
    assert clock.sent_ms == 300.0
    # Playback resumes from 100 ms at 0.5 s, not as if it had kept running since 0.
    assert clock.played_ms(0.5) == pytest.approx(100.0)
    assert clock.played_ms(0.55) == pytest.approx(150.0)
    assert clock.played_ms(0.7) == pytest.approx(300.0)
    assert clock.played_ms(2.0) == pytest.approx(300.0)


def test_sending_exactly_as_the_buffer_runs_dry_re_anchors() -> None:
    clock = PlaybackClock()
    clock.on_send(1.0, 100.0)
    clock.on_send(1.1, 100.0)  # played 100 == sent 100
    assert clock.played_ms(1.15) == pytest.approx(150.0)
    assert clock.played_ms(1.2) == pytest.approx(200.0)


def test_several_underruns() -> None:
    clock = PlaybackClock()
    clock.on_send(0.0, 100.0)
    clock.on_send(1.0, 100.0)
    assert clock.played_ms(1.05) == pytest.approx(150.0)
    assert clock.played_ms(4.0) == pytest.approx(200.0)
    clock.on_send(5.0, 100.0)
    assert clock.sent_ms == 300.0
    assert clock.played_ms(5.025) == pytest.approx(225.0)
    assert clock.played_ms(6.0) == pytest.approx(300.0)


def test_zero_length_send() -> None:
    clock = PlaybackClock()
    clock.on_send(0.0, 0.0)
    assert clock.sent_ms == 0.0
    assert clock.played_ms(1.0) == 0.0


@pytest.mark.parametrize(
    ("now", "lead_ms", "expected_s"),
    [
        (0.0, 600.0, 0.4),  # 1000 ahead, may run 600 ahead: wait 400 ms
        (0.1, 600.0, 0.3),
        (0.4, 600.0, 0.0),
        (0.9, 600.0, 0.0),
        (0.0, 0.0, 1.0),
        (0.25, 0.0, 0.75),
        (2.0, 0.0, 0.0),
        (0.0, 1000.0, 0.0),
        (0.0, 5000.0, 0.0),  # never negative
    ],
)
def test_wait_s_with_a_lead(now: float, lead_ms: float, expected_s: float) -> None:
    clock = PlaybackClock()
    clock.on_send(0.0, 1000.0)
    assert clock.wait_s(now, lead_ms) == pytest.approx(expected_s)


def test_wait_s_after_an_underrun() -> None:
    clock = PlaybackClock()
    clock.on_send(0.0, 100.0)
    clock.on_send(3.0, 500.0)
    # At 3.1 s: 100 + 100 played of 600 sent, 400 ahead; a 100 ms lead leaves 300 ms to wait.
    assert clock.wait_s(3.1, 100.0) == pytest.approx(0.3)


def test_pacing_loop_keeps_the_lead() -> None:
    """Send 100 ms chunks whenever wait_s says so: the clock never runs more than lead ahead."""
    clock = PlaybackClock()
    now = 0.0
    lead = 300.0
    for _ in range(50):
        now += clock.wait_s(now, lead)
        assert clock.sent_ms - clock.played_ms(now) <= lead + 1e-6
        clock.on_send(now, 100.0)
    assert clock.sent_ms == 5000.0
    # 50 chunks of 100 ms with a 300 ms lead: the last is sent at 5000 - 300 - 100 ms.
    assert now == pytest.approx(4.6)
    assert clock.played_ms(now) == pytest.approx(4600.0)


# -- heard_text --------------------------------------------------------------------------------

SEGMENTS = [
    Segment(0.0, 1000.0, "one two three four"),
    Segment(1000.0, 2000.0, "five six"),
    Segment(2500.0, 3000.0, "seven eight nine ten eleven"),
]


@pytest.mark.parametrize(
    ("played_ms", "expected"),
    [
        (-10.0, ""),
        (0.0, ""),
        (1.0, ""),
        (249.0, ""),
        (250.0, "one"),
        (499.0, "one"),
        (500.0, "one two"),
        (750.0, "one two three"),
        (999.0, "one two three"),
        (1000.0, "one two three four"),
        (1400.0, "one two three four"),
        (1500.0, "one two three four five"),
        (1999.0, "one two three four five"),
        (2000.0, "one two three four five six"),
        (2250.0, "one two three four five six"),  # in the gap between segments
        (2500.0, "one two three four five six"),
        (2600.0, "one two three four five six seven"),
        (2900.0, "one two three four five six seven eight nine ten"),
        (3000.0, "one two three four five six seven eight nine ten eleven"),
        (99_999.0, "one two three four five six seven eight nine ten eleven"),
    ],
)
def test_heard_text(played_ms: float, expected: str) -> None:
    assert heard_text(SEGMENTS, played_ms) == expected


def test_heard_text_of_nothing() -> None:
    assert heard_text([], 0.0) == ""
    assert heard_text([], 5000.0) == ""


def test_heard_text_normalises_whitespace() -> None:
    segments = [Segment(0.0, 100.0, "  Hello,\n  world!  "), Segment(100.0, 200.0, "\tBye.")]
    assert heard_text(segments, 200.0) == "Hello, world! Bye."


def test_heard_text_zero_length_segment_is_heard_once_reached() -> None:
    segments = [Segment(0.0, 100.0, "a b"), Segment(100.0, 100.0, "c"), Segment(100.0, 200.0, "d e")]
    assert heard_text(segments, 99.0) == "a"
    assert heard_text(segments, 100.0) == "a b c"
    assert heard_text(segments, 150.0) == "a b c d"


def test_heard_text_stops_at_the_first_unfinished_segment() -> None:
    # Later segments are never considered once one is cut short, even if they overlap.
    segments = [Segment(0.0, 1000.0, "a b"), Segment(100.0, 200.0, "c")]
    assert heard_text(segments, 500.0) == "a"


def test_segment_is_frozen() -> None:
    segment = Segment(0.0, 1.0, "x")
    with pytest.raises(AttributeError):
        segment.text = "y"  # type: ignore[misc]
