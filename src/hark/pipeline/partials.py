"""Interim transcripts while the user speaks: every ``interval_ms`` of new speech the turn so
far is transcribed again and what changed is reported. A courtesy: a failure is ignored (the
final transcript reports failures), and a result for a turn that has moved on is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hark.engines.base import STT, Float32Array
from hark.errors import EngineError
from hark.pipeline import events as ev
from hark.pipeline.language import SpeechLanguage
from hark.priority import Priority, work_as


class PartialTranscripts:
    def __init__(
        self,
        stt: STT,
        *,
        language: SpeechLanguage,
        interval_ms: int,
        emit: Callable[[ev.Event], None],
        current_item: Callable[[], str | None],
    ) -> None:
        self._stt = stt
        self._language = language
        self._interval_ms = interval_ms
        self._emit = emit
        self._current_item = current_item
        self.task: asyncio.Task[None] | None = None
        self._text = ""
        self._at_ms = 0

    def restart(self) -> None:
        """A new turn began."""
        self._text = ""
        self._at_ms = 0

    def maybe(self, heard_ms: int, utterance: Callable[[], Float32Array]) -> None:
        """Transcribe the turn so far if ``interval_ms`` more of it was heard and none is running."""
        if self.task is not None or heard_ms - self._at_ms < self._interval_ms:
            return
        self._at_ms = heard_ms
        item_id = self._current_item()
        if item_id is not None:
            with work_as(Priority.PARTIAL):  # first to be shed under load
                self.task = asyncio.create_task(self._partial(item_id, utterance()))

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def _partial(self, item_id: str, audio: Float32Array) -> None:
        try:
            # Deterministic: a partial is redone as the speech grows, and should not change by chance.
            transcript = await self._stt.transcribe(audio, language=self._language.code, deterministic=True)
        except EngineError:
            return
        finally:
            if self.task is asyncio.current_task():
                self.task = None
        text = transcript.text
        if item_id != self._current_item() or not text or text == self._text:
            return
        delta = text[len(self._text) :] if text.startswith(self._text) else ""
        self._text = text
        self._emit(ev.TranscriptPartial(item_id, delta, text))
