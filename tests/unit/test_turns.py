"""Tests for turn detection from speech probabilities (hark.pipeline.turns)."""

from __future__ import annotations

import pytest

from hark.pipeline.turns import Detection, Eagerness, TurnConfig, TurnDetector, TurnEvent

STARTED = TurnEvent.SPEECH_STARTED
STOPPED = TurnEvent.SPEECH_STOPPED

SPEECH = 0.9
SILENCE = 0.05
BETWEEN = 0.4  # between the default off_threshold (0.35) and threshold (0.5)


def feed(detector: TurnDetector, probabilities: list[float]) -> list[tuple[int, TurnEvent, int]]:
    """(push index, event, reported chunk index) for every detection."""
    out = []
    for position, probability in enumerate(probabilities):
        detection = detector.push(probability)
        if detection is not None:
            out.append((position, detection.event, detection.chunk_index))
    return out


# -- configuration ---------------------------------------------------------------------------


def test_default_config() -> None:
    config = TurnConfig()
    assert config.chunk_ms == 32.0
    assert config.threshold == 0.5
    assert config.neg_threshold is None
    assert config.start_ms == 96.0
    assert config.end_silence_ms == 300.0
    assert config.max_turn_ms == 30_000.0


@pytest.mark.parametrize(
    ("threshold", "neg_threshold", "expected"),
    [
        (0.5, None, 0.35),
        (0.9, None, 0.75),
        (0.15, None, 0.01),  # never below 0.01
        (0.1, None, 0.01),
        (0.5, 0.2, 0.2),  # explicit neg_threshold wins
        (0.5, 0.45, 0.45),
    ],
)
def test_off_threshold(threshold: float, neg_threshold: float | None, expected: float) -> None:
    assert TurnConfig(threshold=threshold, neg_threshold=neg_threshold).off_threshold == pytest.approx(
        expected
    )


def test_detection_and_events() -> None:
    assert STARTED.value == "speech_started"
    assert STOPPED.value == "speech_stopped"
    assert Detection(STARTED, 4) == Detection(TurnEvent.SPEECH_STARTED, 4)


# -- start of speech ---------------------------------------------------------------------------


def test_silence_alone_detects_nothing() -> None:
    detector = TurnDetector(TurnConfig())
    assert feed(detector, [SILENCE] * 200) == []
    assert detector.in_speech is False


@pytest.mark.parametrize(
    ("start_ms", "chunks_needed"),
    [(96, 3), (32, 1), (64, 2), (160, 5), (100, 3), (0, 1), (10, 1), (250, 8)],
)
def test_speech_starts_after_start_ms_of_consecutive_speech(start_ms: float, chunks_needed: int) -> None:
    detector = TurnDetector(TurnConfig(start_ms=start_ms))
    lead = 4
    events = feed(detector, [SILENCE] * lead + [SPEECH] * 20)
    # Fires on the chunk that completes the run, reporting where the run began.
    assert events == [(lead + chunks_needed - 1, STARTED, lead)]
    assert detector.in_speech is True


def test_start_needs_exactly_start_chunks_not_one_less() -> None:
    detector = TurnDetector(TurnConfig())
    assert feed(detector, [SPEECH, SPEECH]) == []
    assert detector.in_speech is False
    assert detector.push(SPEECH) == Detection(STARTED, 0)


@pytest.mark.parametrize(
    "blips",
    [
        [SPEECH, SILENCE] * 10,
        [SPEECH, SPEECH, SILENCE] * 10,
        [SPEECH, SPEECH, BETWEEN, SPEECH, SPEECH, SILENCE],
        [SPEECH, SPEECH, 0.49, SPEECH, SPEECH, 0.0],
    ],
    ids=["single", "double", "between-breaks-run", "just-below-threshold-breaks-run"],
)
def test_short_blips_do_not_start_a_turn(blips: list[float]) -> None:
    detector = TurnDetector(TurnConfig())
    assert feed(detector, blips) == []
    assert detector.in_speech is False


def test_run_start_is_where_the_last_unbroken_run_began() -> None:
    detector = TurnDetector(TurnConfig())
    probabilities = [SPEECH, SPEECH, SILENCE, SILENCE, SPEECH, SPEECH, SPEECH]
    assert feed(detector, probabilities) == [(6, STARTED, 4)]


def test_probability_equal_to_threshold_counts_as_speech() -> None:
    detector = TurnDetector(TurnConfig(threshold=0.5))
    assert feed(detector, [0.5, 0.5, 0.5]) == [(2, STARTED, 0)]


def test_no_second_start_while_in_speech() -> None:
    detector = TurnDetector(TurnConfig())
    assert feed(detector, [SPEECH] * 100) == [(2, STARTED, 0)]


# -- end of speech -----------------------------------------------------------------------------


def test_speech_stops_after_end_silence_reported_where_silence_began() -> None:
    detector = TurnDetector(TurnConfig())  # end: round(300 / 32) = 9 chunks
    probabilities = [SPEECH] * 10 + [SILENCE] * 20
    assert feed(detector, probabilities) == [(2, STARTED, 0), (18, STOPPED, 10)]
    assert detector.in_speech is False


def test_stop_needs_exactly_end_chunks_of_silence() -> None:
    detector = TurnDetector(TurnConfig())
    assert feed(detector, [SPEECH] * 5 + [SILENCE] * 8) == [(2, STARTED, 0)]
    assert detector.in_speech is True
    assert detector.push(SILENCE) == Detection(STOPPED, 5)


@pytest.mark.parametrize(
    ("end_silence_ms", "end_chunks"),
    [(300, 9), (600, 19), (64, 2), (320, 10), (5000, 156), (10, 1)],
)
def test_end_silence_ms_sets_the_number_of_silent_chunks(end_silence_ms: float, end_chunks: int) -> None:
    detector = TurnDetector(TurnConfig(end_silence_ms=end_silence_ms))
    speech = 6
    events = feed(detector, [SPEECH] * speech + [SILENCE] * (end_chunks + 5))
    assert events == [(2, STARTED, 0), (speech + end_chunks - 1, STOPPED, speech)]


def test_longer_end_silence_fires_later_by_the_chunk_difference() -> None:
    probabilities = [SPEECH] * 8 + [SILENCE] * 40
    short = feed(TurnDetector(TurnConfig(end_silence_ms=300)), probabilities)
    long = feed(TurnDetector(TurnConfig(end_silence_ms=600)), probabilities)
    assert short[-1] == (16, STOPPED, 8)
    assert long[-1] == (26, STOPPED, 8)
    # round(600/32) - round(300/32) = 19 - 9 = 10 chunks later, same reported index.
    assert long[-1][0] - short[-1][0] == 10


@pytest.mark.parametrize(("coded_tail_ms", "tail_chunks"), [(0, 0), (15, 0), (32, 1), (40, 1), (64, 2)])
def test_a_coded_tail_counts_whole_chunks(coded_tail_ms: float, tail_chunks: int) -> None:
    assert TurnConfig(coded_tail_ms=coded_tail_ms).tail_chunks == tail_chunks


def test_a_coded_tail_ends_the_turn_that_many_chunks_sooner_at_the_same_place() -> None:
    probabilities = [SPEECH] * 8 + [SILENCE] * 40
    plain = feed(TurnDetector(TurnConfig()), probabilities)
    coded = feed(TurnDetector(TurnConfig(coded_tail_ms=32)), probabilities)
    assert plain[-1] == (16, STOPPED, 8)
    assert coded[-1] == (15, STOPPED, 8)  # one chunk sooner; the silence still began at 8


def test_a_coded_tail_never_ends_a_turn_without_silence() -> None:
    detector = TurnDetector(TurnConfig(end_silence_ms=64, coded_tail_ms=128))
    assert feed(detector, [SPEECH] * 6 + [SILENCE]) == [(2, STARTED, 0), (6, STOPPED, 6)]


def test_a_coded_tail_shortens_a_semantic_turn_s_longest_silence() -> None:
    probabilities = [SPEECH] * 8 + [SILENCE] * 80
    plain = feed(TurnDetector(TurnConfig(eagerness=Eagerness.HIGH)), probabilities)
    coded = feed(TurnDetector(TurnConfig(eagerness=Eagerness.HIGH, coded_tail_ms=32)), probabilities)
    assert plain[-1][0] - coded[-1][0] == 1


def test_speech_during_silence_resets_the_count() -> None:
    detector = TurnDetector(TurnConfig())
    probabilities = [SPEECH] * 4 + [SILENCE] * 8 + [SPEECH] + [SILENCE] * 9
    # Silence restarts at index 13; nine silent chunks later (index 21) the turn ends.
    assert feed(detector, probabilities) == [(2, STARTED, 0), (21, STOPPED, 13)]


def test_a_new_turn_after_a_stop() -> None:
    detector = TurnDetector(TurnConfig(end_silence_ms=96))  # 3 chunks
    probabilities = [SPEECH] * 4 + [SILENCE] * 3 + [SPEECH] * 2 + [SILENCE] + [SPEECH] * 3 + [SILENCE] * 3
    assert feed(detector, probabilities) == [
        (2, STARTED, 0),
        (6, STOPPED, 4),
        # indexes 7-8 are a blip; the run at 10 starts the next turn
        (12, STARTED, 10),
        (15, STOPPED, 13),
    ]


# -- hysteresis --------------------------------------------------------------------------------


def test_between_thresholds_does_not_start_silence() -> None:
    detector = TurnDetector(TurnConfig())
    assert feed(detector, [SPEECH] * 3 + [BETWEEN] * 100) == [(2, STARTED, 0)]
    assert detector.in_speech is True


def test_between_thresholds_keeps_counting_a_started_silence() -> None:
    detector = TurnDetector(TurnConfig())
    probabilities = [SPEECH] * 3 + [SILENCE] + [BETWEEN] * 20
    # Silence began at 3; the in-between chunks continue it, so it ends 9 chunks later.
    assert feed(detector, probabilities) == [(2, STARTED, 0), (11, STOPPED, 3)]


def test_between_thresholds_does_not_reset_silence() -> None:
    detector = TurnDetector(TurnConfig())
    probabilities = [SPEECH] * 3 + [SILENCE, SILENCE, BETWEEN, SILENCE, BETWEEN] + [SILENCE] * 10
    assert feed(detector, probabilities) == [(2, STARTED, 0), (11, STOPPED, 3)]


def test_probability_equal_to_off_threshold_is_in_between() -> None:
    config = TurnConfig(threshold=0.5, neg_threshold=0.3)
    detector = TurnDetector(config)
    assert feed(detector, [SPEECH] * 3 + [0.3] * 50) == [(2, STARTED, 0)]
    assert detector.push(0.29) is None  # silence starts at index 53
    assert feed(detector, [0.3] * 8) == [(7, STOPPED, 53)]


def test_explicit_neg_threshold_changes_what_counts_as_silence() -> None:
    probabilities = [SPEECH] * 3 + [0.25] * 12
    default = TurnDetector(TurnConfig())  # off 0.35: 0.25 is silence
    assert feed(default, probabilities) == [(2, STARTED, 0), (11, STOPPED, 3)]
    low = TurnDetector(TurnConfig(neg_threshold=0.2))  # 0.25 is in between
    assert feed(low, probabilities) == [(2, STARTED, 0)]


# -- maximum turn length -----------------------------------------------------------------------


def test_max_turn_forces_a_stop() -> None:
    detector = TurnDetector(TurnConfig(max_turn_ms=320))  # 10 chunks, counted from the run start
    events = feed(detector, [SILENCE] * 2 + [SPEECH] * 30)
    assert events == [
        (4, STARTED, 2),
        (11, STOPPED, 12),  # chunks 2..11 make 10; the stop is reported just past the last one
        (14, STARTED, 12),  # continuing speech starts a new turn
        (21, STOPPED, 22),
        (24, STARTED, 22),
        (31, STOPPED, 32),
    ]


def test_default_max_turn_is_30_seconds() -> None:
    detector = TurnDetector(TurnConfig())
    events = feed(detector, [SPEECH] * 1000)
    # round(30000 / 32) = round(937.5) = 938 chunks.
    assert events[:2] == [(2, STARTED, 0), (937, STOPPED, 938)]


def test_max_turn_counts_in_between_and_silent_chunks() -> None:
    detector = TurnDetector(TurnConfig(max_turn_ms=320, end_silence_ms=3200))
    events = feed(detector, [SPEECH] * 3 + [BETWEEN] * 3 + [SILENCE] * 10)
    assert events == [(2, STARTED, 0), (9, STOPPED, 10)]


def test_silence_stop_wins_over_max_turn_on_the_same_chunk() -> None:
    detector = TurnDetector(TurnConfig(max_turn_ms=320, end_silence_ms=96))
    events = feed(detector, [SPEECH] * 7 + [SILENCE] * 5)
    # Chunk 9 completes both three chunks of silence and the ten-chunk turn.
    assert events == [(2, STARTED, 0), (9, STOPPED, 7)]


# -- reset -------------------------------------------------------------------------------------


def test_reset_forgets_a_turn_but_indexes_keep_counting() -> None:
    detector = TurnDetector(TurnConfig())
    assert feed(detector, [SPEECH] * 5) == [(2, STARTED, 0)]
    detector.reset()
    assert detector.in_speech is False
    # No stop for the forgotten turn; the next turn is reported at absolute index 5 + 2 = 7.
    assert feed(detector, [SILENCE] * 2 + [SPEECH] * 3 + [SILENCE] * 9) == [
        (4, STARTED, 7),
        (13, STOPPED, 10),
    ]


def test_reset_forgets_a_partial_run() -> None:
    detector = TurnDetector(TurnConfig())
    assert feed(detector, [SPEECH, SPEECH]) == []
    detector.reset()
    assert detector.push(SPEECH) is None  # index 2: a fresh run of one
    assert detector.push(SPEECH) is None
    assert detector.push(SPEECH) == Detection(STARTED, 2)


def test_reset_forgets_a_partial_silence() -> None:
    detector = TurnDetector(TurnConfig())
    feed(detector, [SPEECH] * 3 + [SILENCE] * 8)
    detector.reset()
    assert feed(detector, [SPEECH] * 3) == [(2, STARTED, 11)]
    assert feed(detector, [SILENCE] * 9) == [(8, STOPPED, 14)]
