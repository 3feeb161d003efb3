"""The model-free speaker clustering on real voices (espeak-ng), and its fallbacks."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from hark.config import MeetingSettings
from hark.engines.base import Float32Array
from hark.meetings import diarization as d
from hark.meetings import diarizer as dz
from hark.meetings.diarization import (
    OnlineSpeakers,
    SpeakerFeature,
    agglomerate,
    assign_turns,
    choose_pyannote,
    cluster_features,
    first_appearance_labels,
    speaker_feature,
)
from hark.meetings.diarizer import Diarizer, SegmentVoice
from tests.speech import speak

RATE = 16_000
MALE, FEMALE = "en-us", "en-us+f3"
SENTENCES = [
    "Good morning everyone, let's review the plan for the new release.",
    "I think we should ship it on Friday, after the final tests pass.",
    "Agreed. Maria will update the documentation by Thursday.",
    "Great, and I will send the announcement to customers next week.",
    "One more thing: the budget review moved to Monday afternoon.",
    "Okay. Let's also check the server capacity before the launch.",
    "Yes.",
    "No, thanks.",
]


def voice(text: str, name: str) -> Float32Array:
    pcm = np.frombuffer(speak(text, voice=name, rate=RATE), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def features(voices: Sequence[str]) -> list[SpeakerFeature | None]:
    return [speaker_feature(voice(text, name)) for text, name in zip(SENTENCES, voices, strict=False)]


def accuracy(labels: Sequence[str | None], truth: Sequence[str]) -> float:
    """Share of segments labelled right, under the best one-to-one mapping of labels (two)."""
    direct = sum(a == b for a, b in zip(labels, truth, strict=True))
    swap = {"S1": "S2", "S2": "S1"}
    swapped = sum(swap.get(a or "", a) == b for a, b in zip(labels, truth, strict=True))
    return max(direct, swapped) / len(truth)


@pytest.mark.parametrize(("first", "second"), [(MALE, FEMALE), ("en-gb", "en-us+f2"), (FEMALE, MALE)])
def test_two_clearly_different_voices_are_told_apart(first: str, second: str) -> None:
    voices = [first if i % 2 == 0 else second for i in range(len(SENTENCES))]
    labels = cluster_features(features(voices))
    truth = ["S1" if v == first else "S2" for v in voices]
    print(f"\n{first} / {second}: {labels} accuracy {accuracy(labels, truth):.0%}")
    # Labels follow first appearance, and the short "Yes." / "No, thanks." join the right voice.
    assert labels == truth


@pytest.mark.parametrize("name", [MALE, FEMALE, "en-gb"])
def test_one_voice_stays_one_speaker(name: str) -> None:
    assert cluster_features(features([name] * len(SENTENCES))) == ["S1"] * len(SENTENCES)


def test_a_turn_taking_pattern_that_is_not_alternating() -> None:
    voices = [MALE, MALE, FEMALE, MALE, FEMALE, FEMALE]
    labels = cluster_features(features(voices))
    assert labels == ["S1", "S1", "S2", "S1", "S2", "S2"]


def test_the_speaker_count_can_be_given() -> None:
    voices = [MALE, FEMALE, MALE, FEMALE]
    feats = features(voices)
    assert cluster_features(feats, speakers=1) == ["S1"] * 4
    assert cluster_features(feats, speakers=2) == ["S1", "S2", "S1", "S2"]


def test_online_labels_are_given_as_segments_arrive() -> None:
    online = OnlineSpeakers()
    voices = [MALE, FEMALE, MALE, FEMALE, MALE, FEMALE]
    assert [online.label(f) for f in features(voices)] == ["S1", "S2", "S1", "S2", "S1", "S2"]


def test_silence_has_no_feature_and_takes_the_previous_speaker() -> None:
    assert speaker_feature(np.zeros(RATE, dtype=np.float32)) is None
    assert speaker_feature(np.zeros(100, dtype=np.float32)) is None
    feats = features([MALE, FEMALE])
    assert cluster_features([feats[0], None, feats[1], None]) == ["S1", "S1", "S2", "S2"]
    assert cluster_features([None, feats[0]]) == ["S1", "S1"]
    assert cluster_features([]) == []
    # Nothing reliable enough to cluster: everyone is S1.
    short = speaker_feature(voice("Yes.", MALE))
    assert short is not None and not short.reliable
    assert cluster_features([short, None]) == ["S1", None]


def test_agglomerative_clustering_with_a_threshold_or_a_count() -> None:
    matrix = np.array(
        [
            [0.0, 0.2, 5.0, 5.1],
            [0.2, 0.0, 5.2, 5.0],
            [5.0, 5.2, 0.0, 0.3],
            [5.1, 5.0, 0.3, 0.0],
        ]
    )
    owners = agglomerate(matrix, threshold=1.0)
    assert owners[0] == owners[1] != owners[2] == owners[3]
    assert len(set(agglomerate(matrix, threshold=10.0))) == 1
    assert len(set(agglomerate(matrix, threshold=0.0))) == 4
    assert len(set(agglomerate(matrix, threshold=0.0, clusters=2))) == 2
    assert agglomerate(np.zeros((0, 0)), threshold=1.0) == []
    assert first_appearance_labels([7, 3, 7, 9]) == ["S1", "S2", "S1", "S3"]


def test_pyannote_turns_map_onto_transcript_segments() -> None:
    turns = [(0.0, 4.0, "SPEAKER_01"), (4.2, 9.0, "SPEAKER_00"), (9.1, 12.0, "SPEAKER_01")]
    spans = [(0.3, 3.9), (4.5, 8.0), (8.5, 11.5), (20.0, 21.0)]
    assert assign_turns(spans, turns) == ["S1", "S2", "S1", None]


def test_pyannote_is_used_only_when_it_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARK_TEST_HF_TOKEN", raising=False)
    source, _, why = choose_pyannote(None, "HARK_TEST_HF_TOKEN")
    assert source is None and why is not None and "HARK_TEST_HF_TOKEN" in why
    monkeypatch.setenv("HARK_TEST_HF_TOKEN", "hf_x")
    source, token, why = choose_pyannote(None, "HARK_TEST_HF_TOKEN")
    try:
        import pyannote.audio  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        assert source is None and why is not None and "pip install pyannote.audio" in why
        # Asked for explicitly, it falls back, and says why with every result.
        diarizer = Diarizer(MeetingSettings(diarization="pyannote", hf_token_env="HARK_TEST_HF_TOKEN"))
        assert diarizer.method == "clustering"
        assert diarizer.fallback_reason is not None and "pyannote.audio" in diarizer.fallback_reason
    else:  # pragma: no cover - pyannote is not a dependency
        assert source == d.PYANNOTE_DEFAULT and token == "hf_x"


async def test_a_clustering_failure_falls_back_to_one_speaker(monkeypatch: pytest.MonkeyPatch) -> None:
    diarizer = Diarizer(MeetingSettings(diarization="clustering"))
    assert diarizer.method == "clustering" and diarizer.fallback_reason is None
    feats = [SegmentVoice(f, None, f.speech_s if f else 0.0) for f in features([MALE, FEMALE])]
    result = await diarizer.diarize([(0.0, 3.0), (3.5, 6.0)], feats)
    assert result.labels == ["S1", "S2"] and result.method == "clustering" and result.error is None

    def broken(*args: object, **kwargs: object) -> list[str | None]:
        raise FloatingPointError("boom")

    monkeypatch.setattr(dz, "cluster_features", broken)
    result = await diarizer.diarize([(0.0, 3.0), (3.5, 6.0)], feats)
    assert result.labels == ["S1", "S1"] and result.method == "single-speaker"
    assert result.error is not None and "FloatingPointError" in result.error
    empty = await diarizer.diarize([], [])
    assert empty.labels == [] and empty.method == "none"


async def test_segments_cut_by_the_vad_are_labelled_per_voice() -> None:
    """The whole path without STT: two voices → Silero VAD segments → features → labels."""
    from hark.engines.vad.silero import SileroVAD
    from hark.meetings.segmenter import Segmenter, SegmenterConfig

    vad = SileroVAD()
    try:
        segmenter = Segmenter(vad, SegmenterConfig(), input_rate=24_000)
        voices = [MALE, FEMALE, MALE, FEMALE]
        gap = bytes(24_000 * 2 * 800 // 1000)
        pcm = gap + b"".join(speak(t, voice=v) + gap for t, v in zip(SENTENCES, voices, strict=False))
        segments = []
        for offset in range(0, len(pcm), 960):  # 20 ms frames at 24 kHz
            segments += await segmenter.push(segmenter.resample(pcm[offset : offset + 960]))
        segments += await segmenter.flush()
    finally:
        await vad.aclose()
    assert [s.index for s in segments] == [0, 1, 2, 3]
    assert all(a.end < b.start for a, b in itertools.pairwise(segments))
    assert segmenter.position_s == pytest.approx(len(pcm) / 2 / 24_000, abs=0.05)
    labels = cluster_features([speaker_feature(s.audio) for s in segments])
    assert labels == ["S1", "S2", "S1", "S2"]


async def test_long_speech_is_cut_and_the_open_segment_closes_at_the_end() -> None:
    from hark.engines.vad.silero import SileroVAD
    from hark.meetings.segmenter import Segmenter, SegmenterConfig

    vad = SileroVAD()
    try:
        segmenter = Segmenter(vad, SegmenterConfig(max_segment_s=2.0), input_rate=RATE)
        # No silence at the end: the last segment is still open when the meeting stops.
        speech = speak(SENTENCES[0] + " " + SENTENCES[1], rate=RATE)
        pcm = bytes(RATE) + speech[: len(speech) * 9 // 10 // 2 * 2]
        segments = []
        for offset in range(0, len(pcm), 640):
            segments += await segmenter.push(segmenter.resample(pcm[offset : offset + 640]))
        assert segmenter.in_speech and segmenter.open_seconds > 0
        assert segmenter.open_segment() is not None
        segments += await segmenter.flush()
    finally:
        await vad.aclose()
    assert len(segments) >= 3
    assert all(s.end - s.start <= 2.05 for s in segments[:-1])
    assert segments[-1].end == pytest.approx(len(pcm) / 2 / RATE, abs=0.05)
    assert segmenter.open_segment() is None and not segmenter.in_speech
