"""The fixed greeting's audio, kept: every call opens with the same words, so after the first
synthesis they play at once (the first reply ``media`` follows ``start`` within milliseconds
rather than a TTS's time to first audio).

``PhraseCache`` is a TTS in front of the configured one: for the greeting's sentences (split as
the responder splits them) it replays the audio of the first complete synthesis; any other text
goes straight through. It is filled at start-up (``PhoneLine.warm``), and again by a webhook
should that have failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from hark.engines.base import TTS, TTSCapabilities
from hark.errors import EngineError
from hark.pipeline.sentences import SentenceSplitter

log = logging.getLogger("hark.twilio")

PIECE_BYTES = 4800
"""Replayed in pieces like a streaming TTS's (100 ms at 24 kHz), so pacing starts at once."""


def sentences(text: str) -> list[str]:
    splitter = SentenceSplitter()
    return splitter.push(text) + splitter.flush()


class PhraseCache:
    def __init__(self, inner: TTS, phrases: list[str]) -> None:
        self._inner = inner
        self.name: str = inner.name
        self.sample_rate: int = inner.sample_rate
        self.capabilities: TTSCapabilities = inner.capabilities
        self._phrases = frozenset(phrases)
        self._audio: dict[str, bytes] = {}
        self._priming: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._phrases <= self._audio.keys()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        cached = self._audio.get(text)
        if cached is not None:
            for offset in range(0, len(cached), PIECE_BYTES):
                yield cached[offset : offset + PIECE_BYTES]
            return
        pieces: list[bytes] = []
        async for piece in self._inner.synthesize(text):
            pieces.append(piece)
            yield piece
        if text in self._phrases:
            self._audio[text] = b"".join(pieces)

    def prime(self) -> None:
        """Synthesise the phrases not yet kept, in the background (once at a time)."""
        if self.ready or (self._priming is not None and not self._priming.done()):
            return
        self._priming = asyncio.create_task(self.fill())

    async def fill(self) -> None:
        """Synthesise the phrases not yet kept (a failure is logged: calls then synthesise)."""
        for phrase in self._phrases - self._audio.keys():
            try:
                async for _ in self.synthesize(phrase):
                    pass
            except EngineError as exc:
                log.warning("could not prepare the greeting's audio", extra={"engine": exc.engine})
                return

    async def check(self) -> None:
        await self._inner.check()

    async def aclose(self) -> None:
        """The configured TTS is shared and closed by its owner; only the priming stops."""
        if self._priming is not None:
            self._priming.cancel()
