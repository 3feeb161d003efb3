"""What a conversation starts at a pause inside a turn, before it knows the turn is over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hark.engines.base import ChatMessage, Transcript
from hark.priority import Work


@dataclass(slots=True)
class Speculation:
    """A transcription of the speech so far and, once it is in, a reply prepared from it but
    held back. If the turn ends on this pause both are used as they are; if the user goes on,
    both are dropped without a trace."""

    audio_ms: int
    """Position of the silence it started at."""
    transcript: asyncio.Task[Transcript]
    work: Work
    """Its engine work's priority: SPECULATIVE, promoted to FINAL when the turn ends on it."""
    reply: asyncio.Task[None] | None = None
    text: str | None = None
    """The transcript the held reply answers."""
    context: list[ChatMessage] | None = None
    """What the held reply's LLM was sent; it may speak only if that is still the conversation."""
    release: Callable[[float | None, float], None] | None = None
    """Set by the held reply once it runs: lets it speak (end_of_speech, detected)."""

    def cancel(self) -> None:
        self.transcript.cancel()
        if self.reply is not None:
            self.reply.cancel()

    def tasks(self) -> list[asyncio.Task[Any]]:
        return [t for t in (self.transcript, self.reply) if t is not None]
