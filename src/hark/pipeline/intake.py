"""The input side of a conversation: audio and client commits in, the user's finished turns out.

``Intake`` owns the listener (audio → turn boundaries), the user's item in progress, its partial
transcripts, the speculation started at a pause (speculation.py) and speech over a spoken reply,
which pauses the reply while ``BargeIn`` decides from its words whether it interrupts. What a
finished turn becomes — its transcript and the answer — is the conductor's (conversation.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from hark.engines.base import STT, VAD, Float32Array, Transcript, TurnModel
from hark.pipeline import events as ev
from hark.pipeline.barge_in import BargeIn
from hark.pipeline.conversation_state import ConversationState
from hark.pipeline.errors import CommitTooShort
from hark.pipeline.interruptions import Verdict
from hark.pipeline.language import SpeechLanguage
from hark.pipeline.listener import Listener, TurnBoundary
from hark.pipeline.partials import PartialTranscripts
from hark.pipeline.record import Record
from hark.pipeline.responder import Responder
from hark.pipeline.setup import ConversationConfig, new_id
from hark.pipeline.slot import ResponseSlot
from hark.pipeline.speculation import Speculation, Speculator
from hark.pipeline.turns import TurnEvent

MIN_COMMIT_MS = 100


class Conductor(Protocol):
    """What the input side needs of the conversation it feeds."""

    auto_respond: bool
    interrupt: bool
    slot: ResponseSlot

    @property
    def responding(self) -> bool: ...

    def set_state(self, state: ConversationState) -> None: ...

    def stop_reply(self, reason: str) -> None: ...

    def hold_reply(self, speculation: Speculation) -> Coroutine[Any, Any, None]:
        """The reply prepared from a speculative transcript, held back until released."""
        ...

    def turn_ended(self, item_id: str, end_of_speech: float, speculation: Speculation | None) -> None:
        """Server turn detection ended the turn, maybe on the pause ``speculation`` started at."""
        ...

    def commit_turn(
        self,
        item_id: str,
        *,
        end_of_speech: float,
        speculative: asyncio.Task[Any] | None = None,
        audio: Float32Array | None = None,
    ) -> None:
        """Transcribe the committed turn (``audio``, else the listener's) and answer it."""
        ...


class Intake:
    def __init__(
        self,
        vad: VAD,
        stt: STT,
        config: ConversationConfig,
        record: Record,
        emit: Callable[[ev.Event], None],
        conductor: Conductor,
        *,
        input_rate: int,
        turn_model: TurnModel | None,
        language: SpeechLanguage,
    ) -> None:
        """``language``: the conversation's, shared by everything here that transcribes."""
        self.config = config
        self._record = record
        self._emit = emit
        self._conductor = conductor
        self.listener = Listener(
            vad,
            config.turn,
            input_rate=input_rate,
            prefix_ms=config.prefix_ms,
            max_turn_s=config.max_turn_s,
            turn_model=turn_model,
            transcripts=self,  # a semantic turn reads the speculation's words (transcript_at)
        )
        self.item_id: str | None = None
        """The user's item in progress (its speech started, not yet committed)."""
        self.partials = PartialTranscripts(
            stt,
            language=language,
            interval_ms=config.partial_interval_ms,
            emit=emit,
            current_item=lambda: self.item_id,
        )
        self.speculation = Speculator(stt, language=language)
        self.barge = BargeIn(
            config.interruptions, stt, language=language, emit=emit, interrupt=self._interrupted
        )
        """Decides whether speech over a spoken reply interrupts it (pipeline/barge_in.py)."""
        self.settling: asyncio.Task[None] | None = None

    def set_turn_detection(self, enabled: bool) -> None:
        # New turn-detection settings forget the turn in progress (here, or listener.configure).
        self.speculation.cancel()
        if enabled != self.listener.vad_enabled:
            self.listener.reset()
            self.listener.vad_enabled = enabled

    async def push_audio(self, pcm: bytes) -> None:
        for boundary in await self.listener.push(pcm):
            if boundary.event is TurnEvent.SPEECH_STARTED:
                self._speech_started(boundary)
            elif boundary.event is TurnEvent.PAUSED:
                self._paused(boundary)
            else:
                self._speech_stopped(boundary)
        if self.listener.in_speech and self.barge.deciding:
            self.barge.check(self.listener.utterance_ms(), self.listener.utterance)
        elif self.listener.in_speech and self.config.partial_interval_ms:
            self._maybe_partial()

    def _speech_started(self, boundary: TurnBoundary) -> None:
        conductor = self._conductor
        self.speculation.cancel()
        # Over a spoken reply the speech pauses it and its words decide (barge_in.py); with
        # interrupt_response off the reply goes on and the speech is a turn of its own.
        over_reply = self._pause_reply() if conductor.interrupt else conductor.responding
        if conductor.interrupt and not over_reply:
            conductor.stop_reply("turn_detected")
        self.item_id = new_id("item")
        self.partials.restart()
        self._emit(ev.SpeechStarted(self.item_id, boundary.audio_ms))
        if not over_reply:
            conductor.set_state(ConversationState.LISTENING)

    def _pause_reply(self) -> bool:
        current = self._conductor.slot.current
        if current is None:
            return False
        response_id, item_id, output = current
        return isinstance(output, Responder) and self.barge.begin(response_id, item_id, output)

    def _interrupted(self) -> None:
        """The speech over the reply had real words: barge in."""
        self._conductor.stop_reply("turn_detected")
        self._conductor.set_state(ConversationState.LISTENING)

    def _paused(self, boundary: TurnBoundary) -> None:
        """A short silence: transcribe what was said so far now, while the end-of-turn silence
        runs on. If the turn ends on this silence the result is the final transcript; if the user
        goes on, it is thrown away (speculative end of turn)."""
        if self.barge.deciding:  # speech over a reply: is it words?
            self.barge.paused(boundary.audio_ms, self.listener.utterance())
            return
        self._speculate(boundary.audio_ms)

    def transcript_at(self, audio_ms: int) -> asyncio.Future[Transcript] | None:
        """The words of the pause at ``audio_ms`` for a semantic end of turn (listener.py): the
        speculation's transcript, started now if the listener asks before the pause is reported
        (both in one push of audio). ``None`` over a reply, or with speculation turned off."""
        if self.barge.deciding:
            return None
        self._speculate(audio_ms)
        current = self.speculation.current
        return current.transcript if current is not None and current.audio_ms == audio_ms else None

    def _speculate(self, audio_ms: int) -> None:
        """Start the speculation of the pause at ``audio_ms``, unless it runs already."""
        current = self.speculation.current
        if current is not None and current.audio_ms == audio_ms:
            return
        if self.item_id is None or not self.config.speculative_transcript:
            return
        self.partials.cancel()
        conductor = self._conductor
        hold = conductor.auto_respond and self.config.speculative_reply and not conductor.responding
        self.speculation.start(audio_ms, self.listener.utterance(), conductor.hold_reply if hold else None)

    def _speech_stopped(self, boundary: TurnBoundary) -> None:
        item_id = self.item_id or new_id("item")
        self.item_id = None
        self._emit(ev.SpeechStopped(item_id, boundary.audio_ms))
        if self.barge.deciding:
            audio = self.listener.take_utterance()
            self.settling = asyncio.create_task(self._settle(item_id, boundary, audio))
            return
        speculation = self.speculation.take(boundary.audio_ms)
        self._conductor.turn_ended(item_id, boundary.wall_time, speculation)

    async def _settle(self, item_id: str, boundary: TurnBoundary, audio: Float32Array) -> None:
        """Speech over a reply ended: a turn if it had real words, else dropped without a trace."""
        verdict, transcript = await self.barge.settle(boundary.audio_ms, audio)
        if verdict is not Verdict.WORDS:
            self._emit(ev.SpeechIgnored(item_id, verdict.value))
            return
        self._conductor.commit_turn(
            item_id, end_of_speech=boundary.wall_time, speculative=transcript, audio=audio
        )

    def commit(self) -> str:
        """Commit what was appended (client-side turn detection). Raises CommitTooShort."""
        if self.listener.utterance_ms() < MIN_COMMIT_MS:
            raise CommitTooShort(f"buffer too small: commit needs at least {MIN_COMMIT_MS} ms of audio")
        item_id = self.item_id or new_id("item")
        self.item_id = None
        self.speculation.cancel()  # the commit, not a pause, ends the turn
        self._conductor.commit_turn(item_id, end_of_speech=time.monotonic())
        self.listener.reset()  # a turn the VAD had open ends with the commit
        return item_id

    def clear(self) -> None:
        self.listener.reset()
        self.partials.cancel()
        self.speculation.cancel()
        self.item_id = None
        self._emit(ev.InputCleared())

    def accept(self, item_id: str, audio: Float32Array | None = None) -> Float32Array:
        """The turn's audio (``audio``, else what the listener holds), reported committed."""
        audio = self.listener.take_utterance() if audio is None else audio
        self.partials.cancel()
        previous = self._record.user_audio(item_id)
        self._emit(ev.InputCommitted(item_id, previous))
        return audio

    def _maybe_partial(self) -> None:
        if self.speculation.transcribing:
            return  # the speculative transcription is this moment's partial
        self.partials.maybe(self.listener.utterance_ms(), self.listener.utterance)

    def stop(self) -> list[asyncio.Task[Any]]:
        """Cancel every task of the turn in progress; returns them, to be awaited."""
        self.barge.reset()
        tasks = [t for t in (self.partials.task, self.settling) if t is not None]
        tasks += self.speculation.tasks()
        self.partials.task = self.settling = self.speculation.current = None
        for task in tasks:
            task.cancel()
        return tasks
