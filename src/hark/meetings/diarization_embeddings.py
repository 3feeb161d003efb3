"""Who spoke when from speaker embeddings (CAM++): clustering, settling labels, overlap.

Pure functions and one small state object, no I/O: the embeddings come from
:class:`hark.engines.speaker.campplus.CampPlusEmbedder` (in a worker process), one unit vector
per speech segment.

* **Clustering.** Segments with at least :data:`RELIABLE_S` of speech are clustered
  agglomeratively with average linkage on cosine distance; merging stops when the closest two
  clusters are further apart than :data:`THRESHOLD`, so the number of speakers is estimated.
  ``min_speakers``/``max_speakers`` (or an exact ``speakers``) bound it. Shorter segments (a
  one-word "Bye.") give noisy embeddings: they take the nearest cluster's speaker instead of
  starting one.
* **Overlap.** Two people at once give an embedding that resembles the louder (or longer)
  voice but less than its own turns do. It keeps that speaker and is flagged as overlap when
  it sits apart from the speaker's other segments, and when it would start a speaker of one
  segment it joins the established speaker it is closest to instead (never a new speaker made
  of noise). A segment of :data:`HALVES_S` or more whose two halves sound like different
  speakers (a turn that ran into the next without a pause) is flagged too. These are
  heuristics: a second of overlap inside a turn may go unflagged, and a segment is never split.
* **Settled labels.** :func:`stable_labels` maps clusters to the labels given before (live,
  tentatively) wherever they agree, so "S1" stays the first person who spoke and a name the
  client gave a label keeps pointing at the same voice; a new speaker gets a number never used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

THRESHOLD = 0.32
"""Cosine distance (1 - similarity) above which two clusters are different speakers. Measured
on the test meetings of 1, 3 and 5 espeak-ng voices cut by the VAD: 0.30-0.36 finds every
count; 0.28 splits en+f3 (its segments are 0.2-0.4 apart), 0.38 merges en+f3 with en-us+f4."""
RELIABLE_S = 2.0
"""Speech a segment needs for its embedding to take part in clustering."""
HALVES_S = 4.0
"""Segments with this much speech also get an embedding per half: when the halves belong to
different speakers (one turn ran into the next without a pause, or two people spoke at once),
the segment keeps its speaker (the longer or louder one) and is flagged as overlap."""
OVERLAP_SIMILARITY = 0.72
"""A segment whose cosine similarity to the centroid of its speaker's other segments is below
this is flagged as overlap. Measured on the VAD-cut test meetings: every single-voice segment
is at 0.74 or more (median 0.85-0.89); two espeak-ng voices mixed at equal level 0.69."""
ABSORB_SIMILARITY = 0.55
"""A one-segment speaker at least this similar (cosine) to an established speaker's centroid is
taken as overlap or noise on that speaker (see :func:`_absorb_strays`). Measured: two espeak-ng
voices at once resemble the louder one at 0.6-0.8; a different voice's turn sits at 0.3-0.5."""
MAX_LIVE_RECLUSTER = 400
"""Live labels re-cluster every segment up to this many; beyond, new segments join the nearest
speaker (the final clustering still uses all of them)."""

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Voice:
    """What diarisation knows of one segment."""

    embedding: Vector | None
    """Unit-length speaker embedding; None when the segment was too short or failed."""
    speech_s: float
    halves: tuple[Vector, Vector] | None = None
    """Embeddings of the first and the second half of a long segment (see :data:`HALVES_S`)."""


@dataclass(frozen=True, slots=True)
class Attribution:
    clusters: list[int]
    """A cluster id per segment (ids are arbitrary)."""
    overlap: list[bool]
    """Per segment: it sounded like more than one voice (see :func:`_absorb_strays`)."""


def _cosine_distances(vectors: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(1.0 - np.clip(vectors @ vectors.T, -1.0, 1.0))


def average_linkage(
    distances: npt.NDArray[np.float64],
    *,
    threshold: float,
    min_clusters: int = 1,
    max_clusters: int | None = None,
) -> list[int]:
    """Agglomerative clustering (average linkage) of a symmetric distance matrix: merge the
    closest pair while it is within ``threshold`` or more than ``max_clusters`` remain, never
    below ``min_clusters``. A cluster id per item."""
    n = distances.shape[0]
    if n == 0:
        return []
    work = distances.astype(np.float64, copy=True)
    np.fill_diagonal(work, np.inf)
    sizes = np.ones(n)
    owner = np.arange(n)
    remaining = n
    while remaining > max(1, min_clusters):
        flat = int(np.argmin(work))
        i, j = divmod(flat, n)
        must = max_clusters is not None and remaining > max_clusters
        if not must and work[i, j] > threshold:
            break
        merged = (sizes[i] * work[i] + sizes[j] * work[j]) / (sizes[i] + sizes[j])
        work[i, :] = merged
        work[:, i] = merged
        work[i, i] = np.inf
        work[j, :] = np.inf
        work[:, j] = np.inf
        sizes[i] += sizes[j]
        owner[owner == j] = i
        remaining -= 1
    return [int(o) for o in owner]


def _centroids(
    vectors: npt.NDArray[np.float64], clusters: Sequence[int]
) -> dict[int, npt.NDArray[np.float64]]:
    out: dict[int, npt.NDArray[np.float64]] = {}
    ids = np.asarray(clusters)
    for cluster in dict.fromkeys(clusters):
        mean = vectors[ids == cluster].mean(axis=0)
        out[cluster] = mean / max(float(np.linalg.norm(mean)), 1e-9)
    return out


def attribute(
    voices: Sequence[Voice],
    *,
    threshold: float = THRESHOLD,
    speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
) -> Attribution:
    """Cluster ids for segments from their embeddings (see the module docstring). Segments
    without an embedding take the cluster of the segment before them (or after, at the start)."""
    n = len(voices)
    embedded = [i for i, v in enumerate(voices) if v.embedding is not None]
    if not embedded:
        return Attribution([0] * n, [False] * n)
    reliable = [i for i in embedded if voices[i].speech_s >= RELIABLE_S] or embedded
    vectors = np.stack([np.asarray(v.embedding, dtype=np.float64) for v in voices if v.embedding is not None])
    row = {index: k for k, index in enumerate(embedded)}
    low = speakers or min_speakers or 1
    high = speakers or max_speakers
    chosen = vectors[[row[i] for i in reliable]]
    owners = average_linkage(
        _cosine_distances(chosen),
        threshold=threshold,
        min_clusters=min(low, len(reliable)),
        max_clusters=high,
    )
    cluster: dict[int, int] = dict(zip(reliable, owners, strict=True))
    overlap: set[int] = set()
    if speakers is None:
        overlap = _absorb_strays(cluster, chosen, owners, reliable, floor=low)
    centroids = _centroids(np.stack([vectors[row[i]] for i in cluster]), list(cluster.values()))
    ids = list(centroids)
    matrix = np.stack([centroids[c] for c in ids])
    for index in embedded:
        if index not in cluster:
            cluster[index] = ids[int(np.argmax(matrix @ vectors[row[index]]))]
    overlap |= _outliers(cluster, reliable, vectors, row)
    for index in embedded:
        halves = voices[index].halves
        if halves is not None:
            sides = {ids[int(np.argmax(matrix @ np.asarray(half, dtype=np.float64)))] for half in halves}
            if len(sides) > 1:
                overlap.add(index)
    labels: list[int] = []
    previous: int | None = None
    for index in range(n):
        value = cluster.get(index, previous)
        labels.append(-1 if value is None else value)
        previous = value if value is not None else previous
    first = next((c for c in labels if c != -1), 0)
    return Attribution([first if c == -1 else c for c in labels], [i in overlap for i in range(n)])


def _outliers(
    cluster: dict[int, int], reliable: list[int], vectors: npt.NDArray[np.float64], row: dict[int, int]
) -> set[int]:
    """Reliable segments less like the rest of their speaker (leave-one-out centroid) than
    :data:`OVERLAP_SIMILARITY`: a second voice is mixed in."""
    flagged: set[int] = set()
    members: dict[int, list[int]] = {}
    for index in reliable:
        members.setdefault(cluster[index], []).append(index)
    for group in members.values():
        if len(group) < 3:
            continue
        stacked = vectors[[row[i] for i in group]]
        total = stacked.sum(axis=0)
        for position, index in enumerate(group):
            rest = total - stacked[position]
            similarity = float(stacked[position] @ rest) / max(float(np.linalg.norm(rest)), 1e-9)
            if similarity < OVERLAP_SIMILARITY:
                flagged.add(index)
    return flagged


def _absorb_strays(
    cluster: dict[int, int],
    vectors: npt.NDArray[np.float64],
    owners: list[int],
    reliable: list[int],
    *,
    floor: int,
) -> set[int]:
    """A speaker heard in one segment only, while the others spoke more, is most often two
    people at once (the mixture resembles neither) or a voice strained by noise: when it is
    close enough to an established speaker it joins them, flagged as overlap. Changes
    ``cluster`` in place; returns the segments moved."""
    counts: dict[int, int] = {}
    for owner in owners:
        counts[owner] = counts.get(owner, 0) + 1
    established = [c for c, k in counts.items() if k >= 2]
    strays = [c for c, k in counts.items() if k == 1]
    if not established or not strays or len(counts) <= floor:
        return set()
    ids = np.asarray(owners)
    centroids = _centroids(vectors[np.isin(ids, established)], [o for o in owners if o in established])
    names = list(centroids)
    matrix = np.stack([centroids[c] for c in names])
    moved: set[int] = set()
    for stray in strays:
        position = owners.index(stray)
        similarity = matrix @ vectors[position]
        best = int(np.argmax(similarity))
        if similarity[best] >= ABSORB_SIMILARITY and len(counts) - len(moved) > floor:
            cluster[reliable[position]] = names[best]
            moved.add(reliable[position])
    return moved


_LABEL = re.compile(r"S(\d+)")


def stable_labels(clusters: Sequence[int], previous: Sequence[str | None] = ()) -> list[str]:
    """Labels ``S<n>`` for cluster ids, agreeing with ``previous`` (labels given earlier to the
    first ``len(previous)`` segments) as much as possible: clusters take the earlier labels most
    of their segments had, largest agreement first; other clusters get numbers above any used,
    in order of first appearance. Without ``previous``: S1, S2, ... in order of first speech."""
    votes: dict[tuple[int, str], int] = {}
    for cluster, label in zip(clusters, previous, strict=False):
        if label is not None:
            votes[(cluster, label)] = votes.get((cluster, label), 0) + 1
    names: dict[int, str] = {}
    taken: set[str] = set()
    first_seen = {c: i for i, c in reversed(list(enumerate(clusters)))}
    for (cluster, label), _ in sorted(votes.items(), key=lambda kv: (-kv[1], first_seen[kv[0][0]])):
        if cluster not in names and label not in taken:
            names[cluster] = label
            taken.add(label)
    used = [int(m.group(1)) for label in previous if label and (m := _LABEL.fullmatch(label))]
    following = max(used, default=0) + 1
    for cluster in dict.fromkeys(clusters):
        if cluster not in names:
            names[cluster] = f"S{following}"
            following += 1
    return [names[c] for c in clusters]


@dataclass(slots=True)
class LiveSpeakers:
    """Tentative labels while the meeting goes on: each new segment re-clusters everything so
    far (cheap: a few hundred 192-d vectors) and the labels are kept stable with
    :func:`stable_labels`; earlier segments whose label changed are reported so the client can
    update them. The labels settle as more speech arrives."""

    threshold: float = THRESHOLD
    min_speakers: int | None = None
    max_speakers: int | None = None
    speakers: int | None = None
    voices: dict[int, Voice] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)

    def add(self, index: int, voice: Voice) -> tuple[str, dict[int, str]]:
        """The label of segment ``index`` and {earlier segment: new label} for those that changed."""
        self.voices[index] = voice
        order = sorted(self.voices)
        if len(order) > MAX_LIVE_RECLUSTER and index in self.voices:
            return self._nearest(index, voice), {}
        result = attribute(
            [self.voices[i] for i in order],
            threshold=self.threshold,
            speakers=self.speakers,
            min_speakers=self.min_speakers,
            max_speakers=self.max_speakers,
        )
        labels = stable_labels(result.clusters, [self.labels.get(i) for i in order])
        changed = {
            i: label
            for i, label in zip(order, labels, strict=True)
            if i != index and self.labels.get(i) != label
        }
        self.labels = dict(zip(order, labels, strict=True))
        return self.labels[index], changed

    def _nearest(self, index: int, voice: Voice) -> str:
        previous = self.labels.get(max((i for i in self.labels if i < index), default=-1), "S1")
        if voice.embedding is None:
            self.labels[index] = previous
            return previous
        best, label = -2.0, previous
        for other, known in self.voices.items():
            if other != index and known.embedding is not None and other in self.labels:
                similarity = float(known.embedding @ voice.embedding)
                if similarity > best:
                    best, label = similarity, self.labels[other]
        self.labels[index] = label
        return label
