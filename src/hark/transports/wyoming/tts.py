"""The tts program: text in, Wyoming audio events out, each piece sent as the engine makes it.

``synthesize``: one ``audio-start``, the audio of every sentence, one ``audio-stop``.
Streaming (``synthesize-start``, ``synthesize-chunk``…, ``synthesize-stop``): the client paces
the text; each sentence is spoken as soon as it is complete in what has arrived, as its own
``audio-start``/``audio-chunk``…/``audio-stop`` (as wyoming-piper does), and
``synthesize-stopped`` follows the last one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from hark.engines.base import TTS
from hark.errors import EngineError, EngineUnavailable
from hark.pipeline.sentences import SentenceSplitter
from hark.transports.wyoming.errors import WyomingError
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.tts import SynthesizeStopped

log = logging.getLogger("hark.wyoming.tts")

Send = Callable[[Event], Awaitable[None]]
CHUNK_SAMPLES = 2048
"""Largest audio-chunk sent; a smaller piece from the engine goes out at once, never held back."""


def _failure(exc: EngineError) -> WyomingError:
    code = "engine_unavailable" if isinstance(exc, EngineUnavailable) else "tts_failed"
    return WyomingError(code, f"speech synthesis failed: {exc}")


class Voice:
    """Sends one audio stream at the chain's rate (16-bit mono)."""

    def __init__(self, tts: TTS, send: Send) -> None:
        self._tts = tts
        self._send = send
        self.first_audio_s: float | None = None
        self._started = time.perf_counter()

    async def start(self) -> None:
        await self._send(AudioStart(rate=self._tts.sample_rate, width=2, channels=1).event())

    async def stop(self) -> None:
        await self._send(AudioStop().event())

    async def speak(self, sentence: str, on_first: Callable[[], Awaitable[None]] | None = None) -> None:
        """The sentence's audio, piece by piece. ``on_first`` runs before its first chunk."""
        step = CHUNK_SAMPLES * 2
        pieces: AsyncIterator[bytes] = self._tts.synthesize(sentence)
        async for pcm in pieces:
            if not pcm:
                continue
            if on_first is not None:
                await on_first()
                on_first = None
            if self.first_audio_s is None:
                self.first_audio_s = time.perf_counter() - self._started
            for offset in range(0, len(pcm), step):
                chunk = pcm[offset : offset + step]
                await self._send(
                    AudioChunk(rate=self._tts.sample_rate, width=2, channels=1, audio=chunk).event()
                )
        if on_first is not None:
            await on_first()  # a sentence without audio still opens its stream


async def synthesize(tts: TTS, text: str, send: Send) -> None:
    """Answer one ``synthesize``: audio-start with the first piece of the first sentence."""
    splitter = SentenceSplitter()
    sentences = splitter.push(text) + splitter.flush()
    voice = Voice(tts, send)
    started = False

    async def start() -> None:
        nonlocal started
        if not started:
            started = True
            await voice.start()

    try:
        for sentence in sentences:
            await voice.speak(sentence, start)
    except EngineError as exc:
        if started:
            await voice.stop()  # close the audio stream the client has begun to play
        raise _failure(exc) from exc
    await start()
    await voice.stop()
    log.info(
        "synthesized",
        extra={"sentences": len(sentences), "first_audio_s": _round(voice.first_audio_s)},
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class TextStream:
    """One streamed synthesis: ``push`` text as it comes, ``finish`` at ``synthesize-stop``."""

    def __init__(
        self, tts: TTS, send: Send, *, max_chars: int, fail: Callable[[WyomingError], Awaitable[None]]
    ) -> None:
        self._tts = tts
        self._send = send
        self._fail = fail
        self._max_chars = max_chars
        self._chars = 0
        self._splitter = SentenceSplitter()
        # Bounded by max_chars (every sentence has at least one character).
        self._sentences: asyncio.Queue[str | None] = asyncio.Queue()
        self._voice = Voice(tts, send)
        self._speaker = asyncio.create_task(self._speak(), name="wyoming text stream")

    def push(self, text: str) -> None:
        self._chars += len(text)
        if self._chars > self._max_chars:
            raise WyomingError("max_length_reached", f"streamed text exceeds {self._max_chars} characters")
        for sentence in self._splitter.push(text):
            self._sentences.put_nowait(sentence)

    async def finish(self) -> None:
        for sentence in self._splitter.flush():
            self._sentences.put_nowait(sentence)
        self._sentences.put_nowait(None)
        await self._speaker
        await self._send(SynthesizeStopped().event())
        log.info("synthesized stream", extra={"first_audio_s": _round(self._voice.first_audio_s)})

    async def _speak(self) -> None:
        while (sentence := await self._sentences.get()) is not None:
            opened = False

            async def open_stream() -> None:
                nonlocal opened
                opened = True
                await self._voice.start()

            try:
                await self._voice.speak(sentence, open_stream)
            except EngineError as exc:
                # That sentence is lost (or cut); the client hears the rest and learns why.
                if opened:
                    await self._voice.stop()
                await self._fail(_failure(exc))
                continue
            await self._voice.stop()

    async def aclose(self) -> None:
        self._speaker.cancel()
        await asyncio.gather(self._speaker, return_exceptions=True)
