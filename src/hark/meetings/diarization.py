"""Two of the diarisation methods (the third, CAM++ embeddings, is in
:mod:`hark.meetings.diarization_embeddings`; :mod:`hark.meetings.diarizer` chooses among them):

``pyannote`` (explicit: ``meetings.diarization: pyannote``)
    ``pyannote.audio``'s speaker-diarization pipeline, when it is installed *and* either
    ``meetings.diarization_model`` (a local pipeline directory or config file) or the token in
    ``meetings.hf_token_env`` (``HF_TOKEN``) is set. It runs over the whole recording after the
    meeting; each transcript segment takes the speaker that overlaps it most. pyannote needs
    torch and is not a dependency of hark: ``pip install pyannote.audio``.

``clustering`` (the last fallback, no model)
    Each speech segment gets a small voice feature: the median pitch of its voiced frames
    (autocorrelation) and the mean of its MFCCs (log-mel spectrum, DCT) over frames with speech
    energy. Segments are clustered agglomeratively (average linkage) with a distance threshold,
    so the number of speakers need not be known; a client may still give it. Pitch dominates
    the distance, so it reliably separates voices whose pitch differs by more than about four
    semitones (most men from most women) and treats similar voices as one speaker: it errs
    towards fewer speakers, never splitting one voice because of what is said. Segments under
    :data:`MIN_RELIABLE_S` of speech are too short for a stable feature and join the nearest
    cluster instead.

Labels are ``S1``, ``S2``, ... in the order speakers first speak.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hark.engines.base import Float32Array

log = logging.getLogger("hark.meetings.diarization")

RATE = 16_000
FRAME = 512
"""Analysis frame: 32 ms at 16 kHz."""
HOP = 160
"""10 ms between frames."""
MEL_BANDS = 40
MFCC = 13
F0_MIN, F0_MAX = 60.0, 400.0
VOICED_CORRELATION = 0.5
"""Normalised autocorrelation at the period above which a frame counts as voiced."""
MIN_RELIABLE_S = 0.8
"""Speech (energetic frames) a segment needs for its feature to be clustered."""

PITCH_SCALE = 3.0
"""Semitones of median-pitch difference worth one unit of distance."""
TIMBRE_SCALE = 8.0
"""Euclidean distance between mean MFCC vectors (orthonormal DCT) worth one unit of distance."""
THRESHOLD = 1.5
"""Clusters further apart than this (average linkage) are different speakers."""

PYANNOTE_DEFAULT = "pyannote/speaker-diarization-3.1"

METHOD_PYANNOTE = "pyannote"
METHOD_CAMPPLUS = "campplus"
METHOD_CLUSTERING = "clustering"
METHOD_SINGLE = "single-speaker"
METHOD_NONE = "none"


@dataclass(frozen=True, slots=True)
class SpeakerFeature:
    pitch: float | None
    """Median pitch of the voiced frames, in semitones above 55 Hz; None when nothing was voiced."""
    timbre: npt.NDArray[np.float64]
    """Mean MFCC 1..12 over frames with speech energy."""
    speech_s: float
    """Seconds of frames with speech energy."""

    @property
    def reliable(self) -> bool:
        return self.pitch is not None and self.speech_s >= MIN_RELIABLE_S


@dataclass(frozen=True, slots=True)
class Diarization:
    labels: list[str | None]
    """One per segment, in the order given."""
    method: str
    error: str | None = None
    """Why a better method was not used (a failure); None when it ran as configured."""
    overlap: list[bool] = field(default_factory=list)
    """Per label: the segment sounded like two people at once (empty: not detected)."""


# -- features -----------------------------------------------------------------------------------


@functools.cache
def _mel_filterbank() -> npt.NDArray[np.float64]:
    def to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(np.array(60.0)), to_mel(np.array(7600.0)), MEL_BANDS + 2))
    bins = np.fft.rfftfreq(FRAME, 1.0 / RATE)
    bank = np.zeros((MEL_BANDS, bins.size))
    for band in range(MEL_BANDS):
        low, centre, high = edges[band : band + 3]
        rising = (bins - low) / (centre - low)
        falling = (high - bins) / (high - centre)
        bank[band] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank


@functools.cache
def _dct() -> npt.NDArray[np.float64]:
    """Orthonormal DCT-II rows 1..MFCC-1 (c0, the loudness, is left out)."""
    n = MEL_BANDS
    k = np.arange(1, MFCC)[:, None]
    return np.asarray(np.sqrt(2.0 / n) * np.cos(np.pi / n * (np.arange(n)[None, :] + 0.5) * k))


def _frames(audio: Float32Array) -> npt.NDArray[np.float64]:
    count = 1 + (audio.size - FRAME) // HOP
    index = np.arange(FRAME)[None, :] + HOP * np.arange(count)[:, None]
    return np.asarray(audio.astype(np.float64)[index])


def speaker_feature(audio: Float32Array) -> SpeakerFeature | None:
    """The voice feature of one segment of 16 kHz audio; None when it holds no speech energy."""
    if audio.size < FRAME:
        return None
    frames = _frames(audio)
    energy = np.sqrt(np.mean(frames**2, axis=1))
    loud = float(np.percentile(energy, 95))
    if loud < 1e-4:
        return None
    speech = frames[energy > 0.1 * loud]
    if speech.shape[0] == 0:
        return None
    windowed = speech * np.hanning(FRAME)
    power = np.abs(np.fft.rfft(windowed, axis=1)) ** 2
    log_mel = np.log(power @ _mel_filterbank().T + 1e-10)
    timbre = (log_mel @ _dct().T).mean(axis=0)
    # Pitch: autocorrelation (Wiener-Khinchin, zero-padded) of the speech frames, at lags of
    # 60-400 Hz; a frame is voiced when its normalised peak is high.
    centred = speech - speech.mean(axis=1, keepdims=True)
    spectrum = np.abs(np.fft.rfft(centred * np.hanning(FRAME), n=2 * FRAME, axis=1)) ** 2
    correlation = np.fft.irfft(spectrum, axis=1)
    zero_lag = correlation[:, :1]
    valid = zero_lag[:, 0] > 1e-12
    shortest, longest = int(RATE / F0_MAX), int(RATE / F0_MIN)
    window = correlation[valid, shortest : longest + 1] / zero_lag[valid]
    pitch: float | None = None
    if window.shape[0]:
        lags = shortest + np.argmax(window, axis=1)
        peaks = window[np.arange(window.shape[0]), lags - shortest]
        voiced = lags[peaks > VOICED_CORRELATION]
        if voiced.size >= 3:
            f0 = float(np.median(RATE / voiced))
            pitch = 12.0 * math.log2(f0 / 55.0)
    return SpeakerFeature(pitch=pitch, timbre=timbre, speech_s=speech.shape[0] * HOP / RATE)


def distance(a: SpeakerFeature, b: SpeakerFeature) -> float:
    pitch = 0.0 if a.pitch is None or b.pitch is None else (a.pitch - b.pitch) / PITCH_SCALE
    timbre = float(np.linalg.norm(a.timbre - b.timbre)) / TIMBRE_SCALE
    return math.hypot(pitch, timbre)


def distance_matrix(features: Sequence[SpeakerFeature]) -> npt.NDArray[np.float64]:
    """:func:`distance` between every pair, vectorised."""
    pitch = np.array([np.nan if f.pitch is None else f.pitch for f in features])
    timbre = np.stack([f.timbre for f in features]) if features else np.zeros((0, MFCC - 1))
    pitch_diff = np.nan_to_num(np.abs(pitch[:, None] - pitch[None, :]), nan=0.0) / PITCH_SCALE
    timbre_diff = np.linalg.norm(timbre[:, None, :] - timbre[None, :, :], axis=2) / TIMBRE_SCALE
    return np.asarray(np.hypot(pitch_diff, timbre_diff), dtype=np.float64)


# -- clustering ---------------------------------------------------------------------------------


def agglomerate(
    matrix: npt.NDArray[np.float64], *, threshold: float, clusters: int | None = None
) -> list[int]:
    """Average-linkage agglomerative clustering of a symmetric distance matrix. Merges the
    closest pair until the closest is further apart than ``threshold`` (or, given ``clusters``,
    until that many remain). Returns a cluster id per item."""
    n = matrix.shape[0]
    if n == 0:
        return []
    work = matrix.astype(np.float64, copy=True)
    np.fill_diagonal(work, np.inf)
    sizes = np.ones(n)
    owner = list(range(n))
    remaining = n
    while remaining > 1:
        flat = int(np.argmin(work))
        i, j = divmod(flat, n)
        if clusters is None and work[i, j] > threshold:
            break
        if clusters is not None and remaining <= clusters:
            break
        # Lance-Williams update for average linkage: j joins i.
        merged = (sizes[i] * work[i] + sizes[j] * work[j]) / (sizes[i] + sizes[j])
        work[i, :] = merged
        work[:, i] = merged
        work[i, i] = np.inf
        work[j, :] = np.inf
        work[:, j] = np.inf
        sizes[i] += sizes[j]
        owner = [i if o == j else o for o in owner]
        remaining -= 1
    return owner


def first_appearance_labels(clusters: Sequence[int]) -> list[str]:
    names: dict[int, str] = {}
    for cluster in clusters:
        names.setdefault(cluster, f"S{len(names) + 1}")
    return [names[c] for c in clusters]


def cluster_features(
    features: Sequence[SpeakerFeature | None],
    *,
    speakers: int | None = None,
    threshold: float = THRESHOLD,
) -> list[str | None]:
    """Speaker labels for segments from their features. Reliable segments are clustered; the
    rest join the nearest cluster; with nothing reliable every segment is S1."""
    reliable = [i for i, f in enumerate(features) if f is not None and f.reliable]
    if not reliable:
        return ["S1" if f is not None else None for f in features] if features else []
    chosen: list[SpeakerFeature] = [features[i] for i in reliable]  # type: ignore[misc]
    matrix = distance_matrix(chosen)
    owners = agglomerate(matrix, threshold=threshold, clusters=speakers)
    cluster_of: dict[int, int] = dict(zip(reliable, owners, strict=True))
    for index, feature in enumerate(features):
        if index in cluster_of or feature is None:
            continue
        nearest = min(range(len(chosen)), key=lambda k: distance(feature, chosen[k]))
        cluster_of[index] = owners[nearest]
    ordered = sorted(cluster_of)
    names = dict(zip(ordered, first_appearance_labels([cluster_of[i] for i in ordered]), strict=True))
    # A segment without any feature (silence, noise) takes the speaker before it.
    labels: list[str | None] = []
    previous: str | None = None
    for index in range(len(features)):
        label = names.get(index, previous)
        labels.append(label)
        previous = label or previous
    if labels and labels[0] is None:
        following = next((label for label in labels if label is not None), "S1")
        labels = [following if label is None else label for label in labels]
    return labels


class OnlineSpeakers:
    """Tentative labels while a meeting is still going (for live partial transcripts): each
    reliable segment joins the nearest speaker centroid within the threshold or starts a new
    speaker. Labels never change once given; the final labels come from :func:`cluster_features`."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self._centroids: list[tuple[SpeakerFeature, int]] = []
        self._last: str | None = None

    def label(self, feature: SpeakerFeature | None) -> str | None:
        if feature is None:
            return self._last
        nearest = min(
            range(len(self._centroids)),
            key=lambda k: distance(feature, self._centroids[k][0]),
            default=None,
        )
        near = nearest is not None and distance(feature, self._centroids[nearest][0]) <= self.threshold
        if not feature.reliable:
            if nearest is None:
                return self._last
            self._last = f"S{nearest + 1}"
            return self._last
        if nearest is not None and near:
            centroid, count = self._centroids[nearest]
            self._centroids[nearest] = (_mean(centroid, count, feature), count + 1)
            index = nearest
        else:
            self._centroids.append((feature, 1))
            index = len(self._centroids) - 1
        self._last = f"S{index + 1}"
        return self._last


def _mean(centroid: SpeakerFeature, count: int, new: SpeakerFeature) -> SpeakerFeature:
    if centroid.pitch is None or new.pitch is None:
        pitch = centroid.pitch if new.pitch is None else new.pitch
    else:
        pitch = (centroid.pitch * count + new.pitch) / (count + 1)
    timbre = (centroid.timbre * count + new.timbre) / (count + 1)
    return SpeakerFeature(pitch=pitch, timbre=timbre, speech_s=centroid.speech_s + new.speech_s)


# -- pyannote -----------------------------------------------------------------------------------


def choose_pyannote(model_path: Path | None, token_env: str) -> tuple[str | None, str | None, str | None]:
    """(source, token, None) when pyannote can run, else (None, None, why not)."""
    token = os.environ.get(token_env) or None
    if model_path is None and token is None:
        return None, None, f"pyannote needs meetings.diarization_model or {token_env}"
    try:
        import pyannote.audio  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return None, None, "pyannote.audio is not installed (pip install pyannote.audio)"
    return (str(model_path) if model_path is not None else PYANNOTE_DEFAULT), token, None


class PyannoteDiarizer:  # pragma: no cover - needs pyannote.audio and torch, not installed in CI
    """Loads the pipeline on first use; runs it on a thread."""

    def __init__(self, source: str, token: str | None) -> None:
        self._source = source
        self._token = token
        self._pipeline: Any = None

    def _load(self) -> Any:
        if self._pipeline is None:
            from pyannote.audio import Pipeline

            pipeline = Pipeline.from_pretrained(self._source, use_auth_token=self._token)
            if pipeline is None:
                raise RuntimeError(f"pyannote could not load {self._source}")
            self._pipeline = pipeline
        return self._pipeline

    def turns(self, audio: Float32Array, speakers: int | None) -> list[tuple[float, float, str]]:
        import torch  # type: ignore[import-not-found]

        pipeline = self._load()
        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
        options = {"num_speakers": speakers} if speakers else {}
        annotation = pipeline({"waveform": waveform, "sample_rate": RATE}, **options)
        return [
            (float(turn.start), float(turn.end), str(speaker))
            for turn, _, speaker in annotation.itertracks(yield_label=True)
        ]


def assign_turns(
    spans: Sequence[tuple[float, float]], turns: Sequence[tuple[float, float, str]]
) -> list[str | None]:
    """Each span takes the speaker that overlaps it most; labels renamed S1, S2, ... in order."""
    raw: list[str | None] = []
    for start, end in spans:
        overlap: dict[str, float] = {}
        for turn_start, turn_end, speaker in turns:
            shared = min(end, turn_end) - max(start, turn_start)
            if shared > 0:
                overlap[speaker] = overlap.get(speaker, 0.0) + shared
        raw.append(max(overlap, key=lambda s: overlap[s]) if overlap else None)
    names: dict[str, str] = {}
    for name in raw:
        if name is not None:
            names.setdefault(name, f"S{len(names) + 1}")
    return [names[s] if s is not None else None for s in raw]
