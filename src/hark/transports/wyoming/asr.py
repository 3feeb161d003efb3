"""The asr program: one utterance's audio in, its transcript out, streamed from partials.

Streaming form (Wyoming's): ``transcript-start`` when the audio starts, a ``transcript-chunk``
for each stretch of words two successive partial transcripts agree on, then the final
``transcript`` (authoritative) and ``transcript-stop``. Words once sent are never taken back:
when the final transcript revises them, the chunks stop and only ``transcript`` has the revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from hark.engines.base import STT, Float32Array
from hark.errors import EngineError, EngineUnavailable
from hark.transports.wyoming.audio_in import AudioFormat, AudioInput
from hark.transports.wyoming.errors import WyomingError
from wyoming.asr import Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.event import Event

log = logging.getLogger("hark.wyoming.asr")

Send = Callable[[Event], Awaitable[None]]


class StableWords:
    """Transcript chunks from successive partials (local agreement of two). Pure."""

    def __init__(self) -> None:
        self._previous: list[str] = []
        self._sent: list[str] = []

    def partial(self, text: str) -> str | None:
        words = text.split()
        agreed: list[str] = []
        for old, new in zip(self._previous, words, strict=False):
            if old != new:
                break
            agreed.append(new)
        self._previous = words
        return self._extend(agreed)

    def final(self, text: str) -> str | None:
        return self._extend(text.split())

    def _extend(self, words: list[str]) -> str | None:
        sent = len(self._sent)
        if len(words) <= sent or words[:sent] != self._sent:
            return None
        chunk = " ".join(words[sent:])
        self._sent = list(words)
        return " " + chunk if sent else chunk


class Transcription:
    """From ``audio-start`` to ``audio-stop``. ``partial_interval_s`` 0: not streamed."""

    def __init__(
        self,
        stt: STT,
        fmt: AudioFormat,
        *,
        language: str | None,
        max_s: float,
        partial_interval_s: float,
        send: Send,
    ) -> None:
        self._stt = stt
        self._language = language
        self._interval_s = partial_interval_s
        self._send = send
        self.input = AudioInput(fmt, stt.sample_rate, max_s)
        self._words = StableWords()
        self._partial_at = 0.0
        """Input seconds at the last partial."""
        self._partial_task: asyncio.Task[None] | None = None

    @property
    def streaming(self) -> bool:
        return self._interval_s > 0

    async def start(self) -> None:
        if self.streaming:
            await self._send(TranscriptStart(language=self._language).event())

    def push(self, fmt: AudioFormat, pcm: bytes) -> None:
        self.input.push(fmt, pcm)
        due = self.input.seconds - self._partial_at >= self._interval_s
        if self.streaming and due and (self._partial_task is None or self._partial_task.done()):
            self._partial_at = self.input.seconds
            self._partial_task = asyncio.create_task(
                self._partial(self.input.audio()), name="wyoming partial"
            )

    async def _partial(self, audio: Float32Array) -> None:
        try:
            transcript = await self._stt.transcribe(audio, language=self._language)
        except EngineError:
            return  # a partial is best effort; the final transcript reports failures
        if chunk := self._words.partial(transcript.text):
            with contextlib.suppress(ConnectionError, OSError):  # the connection's loop sees it too
                await self._send(TranscriptChunk(chunk).event())

    async def finish(self) -> None:
        await self.aclose()  # a partial still running would only delay the final transcript
        audio = self.input.audio(last=True)
        started = time.perf_counter()
        text = ""
        if len(audio):
            try:
                transcript = await self._stt.transcribe(audio, language=self._language)
            except EngineUnavailable as exc:
                raise WyomingError("engine_unavailable", f"transcription failed: {exc}") from exc
            except EngineError as exc:
                raise WyomingError("transcription_failed", f"transcription failed: {exc}") from exc
            text = transcript.text.strip()
        log.info(
            "transcribed",
            extra={
                "audio_s": round(self.input.seconds, 2),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        if self.streaming and (chunk := self._words.final(text)):
            await self._send(TranscriptChunk(chunk).event())
        await self._send(Transcript(text=text, language=self._language).event())
        if self.streaming:
            await self._send(TranscriptStop().event())

    async def aclose(self) -> None:
        task, self._partial_task = self._partial_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
