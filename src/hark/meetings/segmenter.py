"""Cutting a meeting's audio into speech segments with the shared VAD.

Client PCM16 at any rate is resampled to 16 kHz (the VAD's and STT's rate). A segment starts
after ``start_ms`` of speech (with ``prefix_ms`` of the audio before it, so the first syllable
is kept) and ends after ``end_silence_ms`` of silence or at ``max_segment_s``. Times are seconds
of audio since the meeting began, so they do not depend on how fast the client sends.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from hark.audio import Resampler, pcm16_to_float
from hark.engines.base import VAD, Float32Array
from hark.pipeline.turns import TurnConfig, TurnDetector, TurnEvent

MIN_SEGMENT_S = 0.25
"""Shorter bursts (a click, a cough) are dropped rather than transcribed."""


@dataclass(frozen=True, slots=True)
class SegmenterConfig:
    threshold: float = 0.5
    neg_threshold: float | None = None
    start_ms: float = 96.0
    end_silence_ms: float = 500.0
    max_segment_s: float = 20.0
    prefix_ms: float = 200.0


@dataclass(frozen=True, slots=True)
class SpeechSegment:
    index: int
    start: float
    """Seconds from the start of the meeting (speech onset, before the prefix)."""
    end: float
    audio: Float32Array
    """16 kHz mono, including the prefix and the trailing silence."""


class Segmenter:
    def __init__(self, vad: VAD, config: SegmenterConfig, *, input_rate: int) -> None:
        self.vad = vad
        self.rate = vad.sample_rate
        self.config = config
        self._chunk = vad.chunk_samples
        chunk_ms = self._chunk * 1000 / self.rate
        self._turns = TurnDetector(
            TurnConfig(
                chunk_ms=chunk_ms,
                threshold=config.threshold,
                neg_threshold=config.neg_threshold,
                start_ms=config.start_ms,
                end_silence_ms=config.end_silence_ms,
                max_turn_ms=config.max_segment_s * 1000,
            )
        )
        self._stream = vad.new_stream()
        self._resampler = Resampler(input_rate, self.rate)
        self._pending = np.zeros(0, dtype=np.float32)
        prefix = round(config.prefix_ms / chunk_ms) + round(config.start_ms / chunk_ms) + 1
        self._recent: collections.deque[Float32Array] = collections.deque(maxlen=prefix)
        self._current: list[Float32Array] = []
        self._current_first = 0
        """Chunk index of the first chunk in ``_current``."""
        self._speech_start = 0
        self._chunk_index = 0
        self._count = 0
        self.samples = 0
        """16 kHz samples received so far (the meeting's length)."""

    @property
    def in_speech(self) -> bool:
        return self._turns.in_speech

    @property
    def position_s(self) -> float:
        return self.samples / self.rate

    def _seconds(self, chunk_index: int) -> float:
        return chunk_index * self._chunk / self.rate

    def resample(self, pcm: bytes, *, last: bool = False) -> Float32Array:
        audio = self._resampler.process(pcm16_to_float(pcm), last=last)
        self.samples += audio.size
        return audio

    async def push(self, audio: Float32Array) -> list[SpeechSegment]:
        """Feed 16 kHz audio (from :meth:`resample`); returns the segments it completed."""
        self._pending = np.concatenate([self._pending, audio]) if self._pending.size else audio
        n = self._pending.size // self._chunk
        if n == 0:
            return []
        chunks = [self._pending[i * self._chunk : (i + 1) * self._chunk] for i in range(n)]
        self._pending = self._pending[n * self._chunk :].copy()
        probabilities = await self.vad.probabilities(self._stream, chunks)
        done: list[SpeechSegment] = []
        for chunk, probability in zip(chunks, probabilities, strict=True):
            index = self._chunk_index
            self._chunk_index += 1
            was_in_speech = self._turns.in_speech
            if was_in_speech:
                self._current.append(chunk)
            else:
                self._recent.append(chunk)
            detection = self._turns.push(probability)
            if detection is None:
                continue
            if detection.event is TurnEvent.SPEECH_STARTED:
                self._current = list(self._recent)
                self._current_first = index - len(self._recent) + 1
                self._speech_start = detection.chunk_index
                self._recent.clear()
            else:
                segment = self._close(detection.chunk_index)
                if segment is not None:
                    done.append(segment)
        return done

    def _close(self, end_chunk: int) -> SpeechSegment | None:
        chunks, self._current = self._current, []
        start, end = self._seconds(self._speech_start), self._seconds(end_chunk)
        if end - start < MIN_SEGMENT_S or not chunks:
            return None
        segment = SpeechSegment(self._count, start, end, np.concatenate(chunks))
        self._count += 1
        return segment

    @property
    def open_seconds(self) -> float:
        """Audio held for the segment in progress (0 outside speech)."""
        return len(self._current) * self._chunk / self.rate if self._turns.in_speech else 0.0

    @property
    def next_index(self) -> int:
        return self._count

    def open_segment(self) -> tuple[int, float, Float32Array] | None:
        """The segment still in progress: (index it will get, start, audio so far)."""
        if not self._turns.in_speech or not self._current:
            return None
        return self._count, self._seconds(self._speech_start), np.concatenate(self._current)

    async def flush(self) -> list[SpeechSegment]:
        """At the end of the meeting: the resampler's tail, and the segment still open."""
        done = await self.push(self.resample(b"", last=True))
        if self._turns.in_speech:
            if self._pending.size:
                self._current.append(self._pending)
                self._pending = np.zeros(0, dtype=np.float32)
            self._turns.reset()
            segment = self._close(self._chunk_index)
            if segment is not None:
                segment = SpeechSegment(
                    segment.index, segment.start, max(segment.end, self.position_s), segment.audio
                )
                done.append(segment)
        return done
