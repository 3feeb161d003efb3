"""What a conversation starts at a pause inside a turn, before it knows the turn is over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from hark.engines.base import STT, ChatMessage, Float32Array, Transcript
from hark.pipeline.language import SpeechLanguage
from hark.priority import Priority, Work, work_as


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


class Speculator:
    """The turn's one speculation: started at a pause, taken when the turn ends on that pause,
    dropped when the user goes on or anything else ends the turn."""

    def __init__(self, stt: STT, *, language: SpeechLanguage) -> None:
        self._stt = stt
        self._language = language
        self.current: Speculation | None = None

    def start(
        self,
        audio_ms: int,
        audio: Float32Array,
        hold: Callable[[Speculation], Coroutine[Any, Any, None]] | None,
    ) -> None:
        """Transcribe ``audio`` now and, with ``hold``, prepare the reply to it (held back)."""
        self.cancel()
        with work_as(Priority.SPECULATIVE) as work:  # its tasks, the held reply's too, share it
            transcript = asyncio.create_task(self._stt.transcribe(audio, language=self._language.code))
            speculation = Speculation(audio_ms, transcript, work)
            if hold is not None:
                speculation.reply = asyncio.create_task(hold(speculation))
        self.current = speculation

    def take(self, audio_ms: int) -> Speculation | None:
        """The speculation if the turn ended on the silence it started at (``audio_ms``), now this
        turn's work; any other is dropped."""
        speculation, self.current = self.current, None
        if speculation is None:
            return None
        if speculation.audio_ms != audio_ms:
            speculation.cancel()
            return None
        speculation.work.promote()  # now it is this turn's transcript (and maybe its reply)
        return speculation

    @property
    def transcribing(self) -> bool:
        return self.current is not None and not self.current.transcript.done()

    def drop_reply(self) -> None:
        if self.current is not None and self.current.reply is not None:
            self.current.reply.cancel()
            self.current.reply = None

    def cancel(self) -> None:
        if self.current is not None:
            self.current.cancel()
            self.current = None

    def tasks(self) -> list[asyncio.Task[Any]]:
        return self.current.tasks() if self.current is not None else []
