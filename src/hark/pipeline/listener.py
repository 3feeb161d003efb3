"""Input audio → VAD → turns: the listening half of a conversation.

Accepts PCM16 at the client's rate, resamples to the VAD/STT rate, runs the VAD in batches off
the event loop and keeps the current utterance (with a little audio from before speech began).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hark.audio.polyphase import CausalResampler
from hark.engines.base import VAD, Float32Array, Transcript, TurnModel
from hark.errors import EngineError
from hark.pipeline.completeness import Reading, judge
from hark.pipeline.turns import (
    SEMANTIC_POLICIES,
    Detection,
    SemanticPolicy,
    TurnConfig,
    TurnDetector,
    TurnEvent,
)
from hark.pipeline.utterance import Utterance

log = logging.getLogger("hark.listener")

PAUSE_MS = 64
"""Silence after which a pause is reported: the moment a speculative transcription can start.
Two VAD chunks. Each pause the user speaks on costs a speculation that is thrown away; a shorter
setting costs more of them (96 ms before: local voice-to-voice p50 703 → 608 ms in the bench)."""


@dataclass(frozen=True, slots=True)
class TurnBoundary:
    event: TurnEvent
    audio_ms: int
    """Position in the input stream, ms since the session began."""
    wall_time: float
    """time.monotonic() when the audio at that position arrived."""


class PauseTranscripts(Protocol):
    """Where a semantic turn gets the words of a pause: the speculative transcript of the speech
    before it (intake.py), so that nothing is transcribed twice."""

    def transcript_at(self, audio_ms: int) -> asyncio.Future[Transcript] | None:
        """The transcript of the turn up to the pause that began at ``audio_ms`` (started now if
        it was not yet), or ``None`` where there is none to be had."""
        ...


class Listener:
    def __init__(
        self,
        vad: VAD,
        config: TurnConfig,
        *,
        input_rate: int,
        prefix_ms: int,
        max_turn_s: float,
        turn_model: TurnModel | None = None,
        transcripts: PauseTranscripts | None = None,
    ):
        self.vad = vad
        self.turn_model = (
            turn_model if turn_model is None or turn_model.sample_rate == vad.sample_rate else None
        )
        self.transcripts = transcripts
        self._config = config
        self.rate = vad.sample_rate
        self._chunk = vad.chunk_samples
        self._stream = vad.new_stream()
        self._turns = TurnDetector(config)
        # Causal: a look-ahead filter would hold back the input's last samples, and the VAD chunk
        # that ends a turn would wait for the next frame to complete (docs/benchmarks.md).
        # Fed the client's PCM16 as it is: no float copy of each frame before the filter's own.
        self._resampler = CausalResampler(input_rate, self.rate, pcm16=True)
        self._pending = np.zeros(0, dtype=np.float32)
        self._unconverted: list[bytes] = []
        """Client audio not yet resampled: it is taken once it completes the next VAD chunk."""
        self._unconverted_samples = 0
        self._chunk_index = 0
        prefix_chunks = max(1, round(prefix_ms / config.chunk_ms)) + round(config.start_ms / config.chunk_ms)
        self._recent: collections.deque[Float32Array] = collections.deque(maxlen=prefix_chunks + 1)
        self._arrivals: collections.deque[tuple[int, float]] = collections.deque(maxlen=4096)
        # Every stored chunk is exactly chunk_samples long; the newest max_turn_s are kept.
        self._max_chunks = max(1, int(max_turn_s * self.rate) // self._chunk)
        self._utterance = Utterance(self._chunk, self._max_chunks)
        self._pause_chunks = max(1, round(PAUSE_MS / config.chunk_ms))
        self.vad_enabled = True
        """Without VAD (client-side turn detection) every sample joins the utterance until commit."""

    @property
    def in_speech(self) -> bool:
        return self._turns.in_speech

    @property
    def position_ms(self) -> int:
        return self._chunk_index * self._chunk * 1000 // self.rate

    def configure(self, config: TurnConfig, *, prefix_ms: int) -> None:
        """New turn-detection settings (session.update); a turn in progress is forgotten."""
        # Chunk indexes go on from where they are: boundaries are positions in the whole input.
        self._turns = TurnDetector(config, start_index=self._chunk_index)
        self._config = config
        self._pause_chunks = max(1, round(PAUSE_MS / config.chunk_ms))
        prefix_chunks = max(1, round(prefix_ms / config.chunk_ms)) + round(config.start_ms / config.chunk_ms)
        self._recent = collections.deque(self._recent, maxlen=prefix_chunks + 1)
        self._utterance.clear()

    def set_input_rate(self, rate: int) -> None:
        if rate != self._resampler.in_rate:
            # What came at the old rate goes through the old resampler.
            self._pending = self._converted()
            self._resampler = CausalResampler(rate, self.rate, pcm16=True)

    def _converted(self) -> Float32Array:
        """The resampled audio not yet cut into chunks, with the unconverted input taken in."""
        if not self._unconverted:
            return self._pending
        data = self._unconverted[0] if len(self._unconverted) == 1 else b"".join(self._unconverted)
        self._unconverted.clear()
        self._unconverted_samples = 0
        audio = self._resampler.process(data)
        return np.concatenate([self._pending, audio]) if self._pending.size else audio

    def utterance(self) -> Float32Array:
        return self._utterance.audio()

    def utterance_ms(self) -> int:
        return len(self._utterance) * self._chunk * 1000 // self.rate

    async def push(self, pcm: bytes) -> list[TurnBoundary]:
        """Feed client audio; returns the turn boundaries it crossed, in order."""
        arrived = time.monotonic()
        # Converted and resampled only once the input completes the next VAD chunk (every one or
        # two 20 ms frames at 32 ms chunks): the causal resampler puts out the same samples
        # whether it gets the audio frame by frame or at once, and each call costs the same
        # dozen small numpy operations however little it is given (docs/benchmarks.md).
        self._unconverted.append(pcm)
        self._unconverted_samples += len(pcm) // 2
        if self._pending.size + self._resampler.output_for(self._unconverted_samples) < self._chunk:
            return []
        self._pending = self._converted()
        n = len(self._pending) // self._chunk
        if n == 0:
            return []
        chunks = [self._pending[i * self._chunk : (i + 1) * self._chunk] for i in range(n)]
        self._pending = self._pending[n * self._chunk :].copy()
        if not self.vad_enabled:
            self._chunk_index += n
            self._utterance.extend(chunks)
            return []
        probabilities = await self.vad.probabilities(self._stream, chunks)
        boundaries: list[TurnBoundary] = []
        for chunk, probability in zip(chunks, probabilities, strict=True):
            index = self._chunk_index
            self._chunk_index += 1
            self._arrivals.append((index, arrived))
            was_in_speech = self._turns.in_speech
            detection = self._turns.push(probability)
            if was_in_speech:
                self._utterance.append(chunk)
            else:
                self._recent.append(chunk)
            if detection is None:
                silence, silence_start = self._turns.silence_run
                if silence == self._pause_chunks:
                    boundaries.append(self._boundary(Detection(TurnEvent.PAUSED, silence_start)))
                if silence and await self._speaker_done(silence):
                    detection = self._turns.end_now()
                if detection is None:
                    continue
            if detection.event is TurnEvent.SPEECH_STARTED:
                self._utterance.restart(self._recent)
                self._recent.clear()
            boundaries.append(self._boundary(detection))
        return boundaries

    async def _speaker_done(self, silence_chunks: int) -> bool:
        """Semantic turns: at the policy's asks, hear the turn model and read the words of the
        pause's speculative transcript (``transcripts``), waiting for them a bounded time."""
        eagerness = self._config.eagerness
        if eagerness is None or self.turn_model is None:
            return False
        policy = SEMANTIC_POLICIES[eagerness]
        ask_ms = policy.ask_at(silence_chunks + self._config.tail_chunks, self._config.chunk_ms)
        if ask_ms is None:
            return False
        pause_ms = self._turns.silence_run[1] * self._chunk * 1000 // self.rate
        transcript = self.transcripts.transcript_at(pause_ms) if self.transcripts is not None else None
        if transcript is None and ask_ms == policy.early_ms:
            return False  # an early ask ends a turn only on words that read complete
        doubt = self._config.words_min_logprob, self._config.words_doubt_ms
        if transcript is not None and transcript.done() and _words(transcript, ask_ms, *doubt).holds:
            return False  # the model need not be asked
        heard = asyncio.ensure_future(self.turn_model.end_probability(self.utterance()))
        heard.add_done_callback(_retrieve)
        try:
            words = Reading.UNKNOWN
            if transcript is not None:  # the model hears the sound meanwhile
                wait_s = policy.wait_ms(ask_ms) / 1000
                deadline = time.monotonic() + wait_s
                either: list[asyncio.Future[Any]] = [transcript, heard]
                await asyncio.wait(either, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
                if heard.done() and not policy.may_end(ask_ms, heard.result()):
                    return False  # the model is sure: no words could end the turn here
                await asyncio.wait([transcript], timeout=max(0.0, deadline - time.monotonic()))
                words = _words(transcript, ask_ms, *doubt)
            if words.holds:
                return False
            probability = await heard
        except EngineError:
            log.warning("turn model failed; this turn ends on silence alone")
            return False
        finally:
            heard.cancel()  # not needed once the words say unfinished
        return policy.ends(ask_ms, probability, words)

    def _boundary(self, detection: Detection) -> TurnBoundary:
        wall = next((t for i, t in reversed(self._arrivals) if i <= detection.chunk_index), time.monotonic())
        return TurnBoundary(detection.event, detection.chunk_index * self._chunk * 1000 // self.rate, wall)

    def take_utterance(self) -> Float32Array:
        """The utterance so far, and start afresh (after a turn ends or is committed)."""
        return self._utterance.take()

    def reset(self) -> None:
        """Forget the current utterance and turn state (input_audio_buffer.clear)."""
        self._utterance.clear()
        self._recent.clear()
        self._turns.reset()


def _words(
    transcript: asyncio.Future[Transcript], ask_ms: float, min_logprob: float | None, doubt_ms: float | None
) -> Reading:
    """How the pause's transcript reads at the ask at ``ask_ms`` (``judge``, then
    ``SemanticPolicy.weigh``); ``UNKNOWN`` until it is in, or if it failed."""
    if not transcript.done() or transcript.cancelled() or transcript.exception() is not None:
        return Reading.UNKNOWN
    return SemanticPolicy.weigh(ask_ms, judge(transcript.result(), min_logprob), doubt_ms)


def _retrieve(task: asyncio.Future[float]) -> None:
    if not task.cancelled():
        task.exception()  # a failure after the words decided is not worth a warning
