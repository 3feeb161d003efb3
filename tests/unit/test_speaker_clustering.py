"""Clustering speaker embeddings: the count is estimated, hints bound it, short turns and
overlap join an established speaker, and labels stay stable as they settle."""

from __future__ import annotations

import numpy as np
import pytest

from hark.meetings.diarization_embeddings import (
    LiveSpeakers,
    Voice,
    attribute,
    average_linkage,
    stable_labels,
)

DIM = 192


def speakers(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((count, DIM))
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def voice(
    centre: np.ndarray, rng: np.random.Generator, *, noise: float = 0.035, seconds: float = 3.5
) -> Voice:
    """An embedding about 0.8 cosine from its speaker's centre (like CAM++ on one voice)."""
    vector = centre + noise * rng.standard_normal(DIM)
    return Voice((vector / np.linalg.norm(vector)).astype(np.float32), seconds)


def best_accuracy(truth: list[int], predicted: list[int]) -> float:
    import itertools

    labels = sorted(set(predicted))
    best = 0
    for perm in itertools.permutations(labels, min(len(labels), len(set(truth)))):
        mapping = dict(zip(sorted(set(truth)), perm, strict=False))
        best = max(best, sum(mapping.get(t) == p for t, p in zip(truth, predicted, strict=True)))
    return best / len(truth)


def test_average_linkage_stops_at_the_threshold_and_obeys_the_bounds() -> None:
    distances = np.array(
        [
            [0.0, 0.1, 0.8, 0.9],
            [0.1, 0.0, 0.85, 0.8],
            [0.8, 0.85, 0.0, 0.2],
            [0.9, 0.8, 0.2, 0.0],
        ]
    )
    clusters = average_linkage(distances, threshold=0.3)
    assert clusters[0] == clusters[1] != clusters[2] == clusters[3]
    assert len(set(average_linkage(distances, threshold=0.3, max_clusters=1))) == 1
    assert len(set(average_linkage(distances, threshold=0.3, min_clusters=3))) == 3
    assert len(set(average_linkage(distances, threshold=0.05))) == 4
    assert average_linkage(np.zeros((0, 0)), threshold=0.3) == []


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_the_number_of_speakers_is_estimated(count: int) -> None:
    rng = np.random.default_rng(count)
    centres = speakers(count, seed=count)
    truth = [t % count for t in range(4 * count + 2)]
    result = attribute([voice(centres[t], rng) for t in truth])
    assert len(set(result.clusters)) == count
    assert best_accuracy(truth, result.clusters) == 1.0
    assert not any(result.overlap)


def test_hints_bound_the_estimate() -> None:
    rng = np.random.default_rng(3)
    centres = speakers(3, seed=3)
    voices = [voice(centres[t % 3], rng) for t in range(12)]
    assert len(set(attribute(voices, max_speakers=2).clusters)) == 2
    assert len(set(attribute(voices, speakers=1).clusters)) == 1
    # One voice asked to be four is split no further than there are segments to split.
    one = [voice(centres[0], rng) for _ in range(3)]
    assert len(set(attribute(one, min_speakers=4).clusters)) == 3


def test_short_turns_join_the_nearest_speaker_and_never_start_one() -> None:
    rng = np.random.default_rng(4)
    centres = speakers(2, seed=4)
    voices = [voice(centres[t % 2], rng) for t in range(6)]
    # "Bye." from speaker 1 (noisier: short) and a segment with no embedding at all.
    voices.insert(3, voice(centres[1], rng, noise=0.06, seconds=0.5))
    voices.append(Voice(None, 0.3))
    result = attribute(voices)
    assert len(set(result.clusters)) == 2
    assert result.clusters[3] == result.clusters[1]
    assert result.clusters[-1] == result.clusters[-2]
    assert attribute([Voice(None, 1.0)] * 3).clusters == [0, 0, 0]


def test_two_voices_at_once_join_the_louder_and_are_flagged() -> None:
    rng = np.random.default_rng(5)
    centres = speakers(3, seed=5)
    voices = [voice(centres[t % 3], rng) for t in range(9)]
    mixture = 0.7 * centres[0] + 0.6 * centres[1]  # speaker 0 louder
    voices.append(voice(mixture / np.linalg.norm(mixture), rng, noise=0.02))
    result = attribute(voices)
    assert len(set(result.clusters)) == 3
    assert result.clusters[-1] == result.clusters[0]
    assert result.overlap[-1] and not any(result.overlap[:-1])


def test_labels_settle_stably() -> None:
    # In order of first speech without earlier labels.
    assert stable_labels([7, 3, 7, 9]) == ["S1", "S2", "S1", "S3"]
    # Earlier labels are kept where the clusters agree; a merged-away label is never reused.
    previous = ["S1", "S2", "S3", "S2", None]
    assert stable_labels([0, 1, 1, 1, 2], previous) == ["S1", "S2", "S2", "S2", "S4"]
    # Swapped cluster ids do not swap the labels.
    assert stable_labels([5, 4, 5], ["S1", "S2", "S1"]) == ["S1", "S2", "S1"]


def test_live_labels_are_tentative_and_report_what_changed() -> None:
    rng = np.random.default_rng(6)
    centres = speakers(2, seed=6)
    live = LiveSpeakers()
    first, changed = live.add(0, voice(centres[0], rng))
    assert first == "S1" and changed == {}
    assert live.add(1, voice(centres[1], rng)) == ("S2", {})
    assert live.add(2, voice(centres[0], rng))[0] == "S1"
    # With only a max of one speaker, the next segment folds S2 into S1 and says so.
    live.max_speakers = 1
    label, changed = live.add(3, voice(centres[1], rng))
    assert label == "S1" and changed == {1: "S1"}


def test_a_turn_that_runs_into_the_next_is_flagged_by_its_halves() -> None:
    rng = np.random.default_rng(7)
    centres = speakers(2, seed=7)
    voices = [voice(centres[t % 2], rng) for t in range(6)]
    whole = voice(centres[0], rng)
    first, second = voice(centres[0], rng), voice(centres[1], rng)
    assert first.embedding is not None and second.embedding is not None and whole.embedding is not None
    voices.append(Voice(whole.embedding, 6.0, (first.embedding, second.embedding)))
    same = voice(centres[1], rng)
    assert same.embedding is not None
    voices.append(Voice(same.embedding, 6.0, (same.embedding, same.embedding)))
    result = attribute(voices)
    assert result.clusters[-2] == result.clusters[0] and result.overlap[-2]
    assert result.clusters[-1] == result.clusters[1] and not result.overlap[-1]
