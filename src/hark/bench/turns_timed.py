"""The turn bench's stand-ins for what a conversation gives a semantic turn: the turn model with
the wall time of each decision, and intake's speculation (one transcript of the turn so far per
pause), each able to record what it heard and answered (``Heard``) for ``turns_trace``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hark.engines.base import STT, Float32Array, Transcript, TurnModel
from hark.errors import EngineError
from hark.pipeline.listener import Listener


@dataclass
class TimedModel:
    """The turn model, with the wall time of each decision recorded."""

    model: TurnModel
    seconds: list[float] = field(default_factory=list)
    name: str = ""
    sample_rate: int = 0
    answered: Callable[[float], None] | None = None
    """Told each answer (the trace of one case)."""

    def __post_init__(self) -> None:
        self.name, self.sample_rate = self.model.name, self.model.sample_rate

    async def end_probability(self, audio: Float32Array) -> float:
        started = time.perf_counter()
        try:
            probability = await self.model.end_probability(audio)
        finally:
            self.seconds.append(time.perf_counter() - started)
        if self.answered is not None:
            self.answered(probability)
        return probability

    async def aclose(self) -> None:
        await self.model.aclose()


@dataclass(frozen=True, slots=True)
class Heard:
    """One transcript of a pause (``audio``: the speech it heard) or one answer of the model."""

    pause_ms: int
    audio: Float32Array | None
    transcript: Transcript | None
    probability: float | None = None


@dataclass
class PauseWords:
    """What intake's speculation is to a semantic turn, for the bench: one transcription of the
    turn so far per pause, started when the pause is reported (or when the listener asks first),
    on the STT's own thread; the wall time of each is recorded."""

    stt: STT
    listener: Listener | None = None
    current: tuple[int, asyncio.Task[Transcript]] | None = None
    seconds: list[float] = field(default_factory=list)
    heard: list[Heard] | None = None
    """Where given, what each pause's transcript said and what the model answered there."""

    def transcript_at(self, audio_ms: int) -> asyncio.Task[Transcript] | None:
        if self.current is not None and self.current[0] == audio_ms:
            return self.current[1]
        if self.listener is None:
            return None
        if self.current is not None:
            self.current[1].cancel()
        task = asyncio.create_task(self._transcribe(audio_ms, self.listener.utterance()))
        self.current = (audio_ms, task)
        return task

    async def _transcribe(self, audio_ms: int, audio: Float32Array) -> Transcript:
        started = time.perf_counter()
        transcript = await self.stt.transcribe(audio)
        self.seconds.append(time.perf_counter() - started)
        if self.heard is not None:
            self.heard.append(Heard(audio_ms, audio, transcript))
        return transcript

    def model_said(self, probability: float) -> None:
        """The model's answer at an ask of the current pause (asks come after ``transcript_at``)."""
        if self.heard is not None and self.current is not None:
            self.heard.append(Heard(self.current[0], None, None, probability))

    async def aclose(self) -> None:
        # Let the last transcription finish (its thread would run on regardless), so the next
        # case does not find the STT busy: sessions of a live server would, cases here need not.
        if self.current is not None:
            with contextlib.suppress(asyncio.CancelledError, EngineError):
                await self.current[1]
