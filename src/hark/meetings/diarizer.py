"""Choosing and running the diarisation method for meetings, with its fallbacks.

``meetings.diarization`` picks the method: ``campplus`` (the default: CAM++ speaker embeddings,
:mod:`hark.meetings.diarization_embeddings`), ``pyannote`` (the stronger, heavier option) or
``clustering`` (model-free voice features, :mod:`hark.meetings.diarization`). A method that
cannot run falls to the next in ``pyannote -> campplus -> clustering -> single-speaker``; the
result names the method that ran and, in ``error``, why a better one did not.

Per segment, while the meeting goes on, :meth:`Diarizer.voice` computes what the method needs
(the embedding runs in the worker pool next to the STT, or on a thread when workers are off) and
a :class:`Live` tracker gives tentative labels for partial transcripts. After the meeting
:meth:`Diarizer.diarize` settles the labels (S1, S2, ... in order of first speech).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hark.config import MeetingSettings
from hark.engines.base import Float32Array
from hark.errors import EngineError
from hark.meetings.diarization import (
    METHOD_CAMPPLUS,
    METHOD_CLUSTERING,
    METHOD_NONE,
    METHOD_PYANNOTE,
    METHOD_SINGLE,
    RATE,
    Diarization,
    OnlineSpeakers,
    PyannoteDiarizer,
    SpeakerFeature,
    assign_turns,
    choose_pyannote,
    cluster_features,
    speaker_feature,
)
from hark.meetings.diarization_embeddings import HALVES_S, LiveSpeakers, Voice, attribute, stable_labels

log = logging.getLogger("hark.meetings.diarization")

TRIM_LEVEL = 0.05
"""Leading and trailing 10 ms frames quieter than this share of the clip's loud level (95th
percentile RMS) are cut before embedding: the segmenter keeps 0.2 s before and 0.5 s after."""
MIN_EMBEDDED_SHARE = 0.5
"""Below this share of segments with an embedding (worker failures), clustering takes over."""


class Embedder(Protocol):
    async def embed(self, clips: list[Float32Array]) -> list[Float32Array | None]: ...


class ThreadEmbedder:
    """An in-process embedder (workers off) on its own thread, never on the event loop."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hark-speaker")

    async def embed(self, clips: list[Float32Array]) -> list[Float32Array | None]:
        loop = asyncio.get_running_loop()
        result: list[Float32Array | None] = await loop.run_in_executor(
            self._executor, self._engine.embed, clips
        )
        return result


@dataclass(frozen=True, slots=True)
class SegmentVoice:
    """What diarisation keeps of one speech segment."""

    feature: SpeakerFeature | None
    embedding: Float32Array | None
    speech_s: float
    halves: tuple[Float32Array, Float32Array] | None = None

    def for_clustering(self) -> Voice:
        return Voice(self.embedding, self.speech_s, self.halves)


def trim(audio: Float32Array) -> Float32Array:
    hop = RATE // 100
    count = audio.size // hop
    if count < 3:
        return audio
    energy = np.sqrt(np.mean(audio[: count * hop].reshape(count, hop).astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(energy > TRIM_LEVEL * float(np.percentile(energy, 95)))
    if loud.size == 0:
        return audio
    return audio[int(loud[0]) * hop : (int(loud[-1]) + 1) * hop]


class Live:
    """Tentative speaker labels while a meeting records: re-clustered embeddings
    (:class:`LiveSpeakers`) or, without them, the voice-feature centroids."""

    def __init__(self, embeddings: LiveSpeakers | None) -> None:
        self._embeddings = embeddings
        self._features = OnlineSpeakers()
        self._given: dict[int, str] = {}

    @property
    def labels(self) -> dict[int, str]:
        return dict(self._embeddings.labels) if self._embeddings is not None else dict(self._given)

    def add(self, index: int, voice: SegmentVoice | None) -> tuple[str | None, dict[int, str]]:
        """Blocking (a re-clustering): call it off the event loop. The label of segment
        ``index`` and the earlier segments whose label changed."""
        if self._embeddings is not None and voice is not None:
            return self._embeddings.add(index, voice.for_clustering())
        label = self._features.label(voice.feature if voice is not None else None)
        if label is not None:
            self._given[index] = label
        return label, {}


class Diarizer:
    def __init__(
        self, settings: MeetingSettings, embedder: Any | None = None, embedder_error: str | None = None
    ) -> None:
        self.settings = settings
        self.threshold = settings.speaker_threshold
        self._embedder: Embedder | None = None
        if embedder is not None:
            self._embedder = (
                embedder if asyncio.iscoroutinefunction(embedder.embed) else ThreadEmbedder(embedder)
            )
        self._pyannote: PyannoteDiarizer | None = None
        reasons: list[str] = []
        if settings.diarization == METHOD_PYANNOTE:
            source, token, why = choose_pyannote(settings.diarization_model, settings.hf_token_env)
            if source is not None:
                self._pyannote = PyannoteDiarizer(source, token)
            else:
                reasons.append(str(why))
        if settings.diarization != METHOD_CLUSTERING and self._embedder is None:
            reasons.append(f"no speaker embeddings: {embedder_error or 'the CAM++ model is not loaded'}")
        self.fallback_reason = "; ".join(reasons) or None
        """Why the configured method cannot run (reported with every result)."""
        log.info("diarisation method chosen", extra={"method": self.method})
        if self.fallback_reason:
            log.warning("diarisation falls back to a weaker method", extra={"reason": self.fallback_reason})

    @property
    def method(self) -> str:
        """The best method that can run."""
        if self._pyannote is not None:
            return METHOD_PYANNOTE
        if self._embedder is not None and self.settings.diarization != METHOD_CLUSTERING:
            return METHOD_CAMPPLUS
        return METHOD_CLUSTERING

    @property
    def uses_embeddings(self) -> bool:
        return self._embedder is not None and self.settings.diarization != METHOD_CLUSTERING

    def live(
        self, *, speakers: int | None = None, min_speakers: int | None = None, max_speakers: int | None = None
    ) -> Live:
        if not self.uses_embeddings:
            return Live(None)
        return Live(
            LiveSpeakers(
                threshold=self.threshold,
                speakers=speakers,
                min_speakers=min_speakers,
                max_speakers=max_speakers,
            )
        )

    async def voice(self, audio: Float32Array, *, meeting_id: str = "") -> SegmentVoice:
        """The segment's voice feature and (with CAM++) embedding; an embedding failure leaves
        it None (the segment then takes a neighbour's speaker), it never fails the segment."""
        feature = await asyncio.to_thread(speaker_feature, audio)
        embedding: Float32Array | None = None
        halves: tuple[Float32Array, Float32Array] | None = None
        if self.uses_embeddings and self._embedder is not None:
            speech = trim(audio)
            clips = [speech]
            if feature is not None and feature.speech_s >= HALVES_S:
                middle = speech.size // 2
                clips += [speech[:middle], speech[middle:]]
            try:
                embedding, *parts = await self._embedder.embed(clips)
                first, second = parts if len(parts) == 2 else (None, None)
                if first is not None and second is not None:
                    halves = (first, second)
            except (EngineError, ValueError) as exc:
                log.warning(
                    "speaker embedding failed for a segment",
                    extra={"meeting": meeting_id, "error": type(exc).__name__},
                )
        speech_s = feature.speech_s if feature is not None else 0.0
        return SegmentVoice(feature, embedding, speech_s, halves)

    async def diarize(
        self,
        spans: Sequence[tuple[float, float]],
        voices: Sequence[SegmentVoice | None],
        *,
        audio: Callable[[], Iterable[bytes]] | None = None,
        speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        meeting_id: str = "",
    ) -> Diarization:
        """Settled labels for the transcript ``spans`` (seconds): S1, S2, ... in order of first
        speech (:func:`hark.meetings.speaker_names.carry_names` maps the live labels' names onto
        them). ``audio`` yields the recording as 16 kHz PCM16 (only pyannote reads it)."""
        if not spans:
            return Diarization([], METHOD_NONE)
        errors = [self.fallback_reason] if self.fallback_reason else []
        if self._pyannote is not None and audio is not None:
            try:
                turns = await asyncio.to_thread(self._pyannote_turns, audio, speakers)
                return self._settled(assign_turns(spans, turns), METHOD_PYANNOTE, errors)
            except Exception as exc:  # pragma: no cover - pyannote is optional
                errors.append(f"pyannote failed: {type(exc).__name__}: {str(exc)[:200]}")
                log.warning(
                    "pyannote diarisation failed", extra={"meeting": meeting_id, "error": type(exc).__name__}
                )
        if self.uses_embeddings:
            embedded = sum(1 for v in voices if v is not None and v.embedding is not None)
            if embedded >= MIN_EMBEDDED_SHARE * len(voices):
                try:
                    result = await asyncio.to_thread(
                        attribute,
                        [v.for_clustering() if v else Voice(None, 0.0) for v in voices],
                        threshold=self.threshold,
                        speakers=speakers,
                        min_speakers=min_speakers,
                        max_speakers=max_speakers,
                    )
                    labels = stable_labels(result.clusters)
                    return Diarization(
                        list(labels), METHOD_CAMPPLUS, "; ".join(errors) or None, result.overlap
                    )
                except Exception as exc:
                    errors.append(f"speaker clustering failed: {type(exc).__name__}: {str(exc)[:200]}")
                    log.warning(
                        "embedding clustering failed",
                        extra={"meeting": meeting_id, "error": type(exc).__name__},
                    )
            else:
                errors.append(
                    f"speaker embeddings failed for {len(voices) - embedded} of {len(voices)} segments"
                )
        try:
            features = [v.feature if v is not None else None for v in voices]
            found: list[str | None] = await asyncio.to_thread(cluster_features, features, speakers=speakers)
            return self._settled(found, METHOD_CLUSTERING, errors)
        except Exception as exc:
            errors.append(f"speaker clustering failed: {type(exc).__name__}: {str(exc)[:200]}")
            log.warning(
                "diarisation failed; one speaker for the whole meeting",
                extra={"meeting": meeting_id, "error": type(exc).__name__},
            )
            return Diarization(["S1"] * len(spans), METHOD_SINGLE, "; ".join(errors))

    @staticmethod
    def _settled(labels: Sequence[str | None], method: str, errors: list[str]) -> Diarization:
        ids: dict[str | None, int] = {}
        clusters = [ids.setdefault(label, len(ids)) for label in labels]
        settled: list[str | None] = list(stable_labels(clusters))
        settled = [None if label is None else name for label, name in zip(labels, settled, strict=True)]
        return Diarization(settled, method, "; ".join(errors) or None)

    def _pyannote_turns(
        self, audio: Callable[[], Iterable[bytes]], speakers: int | None
    ) -> list[tuple[float, float, str]]:  # pragma: no cover - pyannote is optional
        assert self._pyannote is not None
        pcm = b"".join(audio())
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        return self._pyannote.turns(samples, speakers)
