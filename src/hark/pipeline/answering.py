"""Running one response: wait for the transcript, think, speak (or write), report.

The conversation decides when a response starts and stops; ``Answerer.run`` is the task it
starts. A held (speculative) response runs the same way but opens, and says anything, only when
the conversation releases it at the end of the turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from hark.engines.base import LLM, TTS, ChatMessage
from hark.errors import EngineError, EngineSaturated
from hark.pipeline import events as ev
from hark.pipeline.conversation_state import ConversationState, StateMachine
from hark.pipeline.options import ResolvedOptions
from hark.pipeline.record import Record
from hark.pipeline.reply import Reply, Status
from hark.pipeline.responder import Responder
from hark.pipeline.slot import ResponseSlot
from hark.pipeline.speculation import Speculation
from hark.pipeline.thinking import Thought, think
from hark.pipeline.tools import Toolbox


@dataclass(frozen=True, slots=True)
class Speech:
    """How replies are spoken."""

    tts: TTS
    output_rate: int
    chunk_ms: int
    lead_ms: int
    first_clause_words: int = 0


@dataclass(slots=True)
class Answerer:
    llm: LLM | None
    tools: Toolbox | None
    speech: Speech
    record: Record
    slot: ResponseSlot
    machine: StateMachine
    set_state: Callable[[ConversationState], None]
    emit: Callable[[ev.Event], None]
    new_id: Callable[[str], str]

    async def run(
        self,
        response_id: str,
        item_id: str,
        wait_for: asyncio.Task[str | None] | None,
        end_of_speech: float | None,
        detected: float,
        *,
        options: ResolvedOptions,
        early: Speculation | None = None,
        fixed: str | None = None,
    ) -> None:
        """``wait_for``: the transcript to answer; ``early``: a held reply, released by the
        conversation; ``fixed``: words to say instead of the LLM's."""
        user_text: str | None = None
        if self.slot.ending:
            await self.slot.ended()  # the reply this one replaces says its last first
        if early is not None:
            user_text = early.text
        elif wait_for is not None:
            # Shielded: a barge-in cancels this reply, not the transcript of what was said. A
            # transcript already in (it often is: its task ran first) costs no extra loop pass.
            user_text = wait_for.result() if wait_for.done() else await asyncio.shield(wait_for)
            if not user_text:
                # Noise, not words (or a failed transcription, already reported): nothing to answer.
                self.set_state(ConversationState.IDLE)
                return
        transcribed = time.monotonic()
        mode: Literal["llm", "echo"] = "llm" if self.llm is not None else "echo"
        hold = asyncio.Event() if early is not None else None
        speech = self.speech

        def speaker(on_text: Callable[[str], None]) -> Responder:
            return Responder(
                speech.tts,
                output_rate=speech.output_rate,
                chunk_ms=speech.chunk_ms,
                lead_ms=speech.lead_ms,
                on_text=on_text,
                on_audio=lambda pcm: self._on_audio(response_id, item_id, pcm),
                hold=hold,
                first_clause_words=speech.first_clause_words,
            )

        reply = Reply(
            response_id,
            item_id,
            options,
            record=self.record,
            emit=self.emit,
            new_id=self.new_id,
            speech=speaker,
        )
        opened = False

        def open_response(speech_end: float | None, turn_detected: float) -> None:
            nonlocal opened, end_of_speech, detected
            end_of_speech, detected, opened = speech_end, turn_detected, True
            self.slot.opened(response_id, item_id, reply.output)
            reply.started(mode)
            if hold is not None:
                hold.set()

        if early is None:
            open_response(end_of_speech, detected)
        else:
            early.release = open_response
        status: Status = "completed"
        reason: str | None = None
        history = self.record.history
        thought = Thought(
            options.context if options.context is not None else history.messages(options.instructions),
            options.tools,
            options.tool_choice,
            options.max_output_tokens,
        )
        saturated = False
        try:
            source = (
                _once(fixed)
                if fixed is not None
                else think(
                    self.llm,
                    self.tools,
                    thought,
                    user_text=user_text or history.last_user_text(),
                    on_unavailable=lambda m: self.emit(ev.ConversationError("llm_unavailable", m)),
                    confirmed=hold,
                )
            )
            await reply.output.run(source)
        except asyncio.CancelledError:
            status, reason = "cancelled", self.slot.reason(asyncio.current_task())
            raise
        except EngineError as exc:
            status, reason, saturated = "failed", str(exc), isinstance(exc, EngineSaturated)
            if opened:
                self.emit(ev.ConversationError("engine_error", reason))
        finally:
            # A held reply never released leaves no trace: nothing was said, nothing is reported.
            if opened:
                reply.report_latency(end_of_speech, detected, transcribed)
                self.slot.current = None
                reply.finish(status, reason, thought.client_calls, saturated=saturated)
                self.slot.finished(item_id)
                if status != "cancelled" and self.machine.state is not ConversationState.LISTENING:
                    self.set_state(ConversationState.IDLE)

    async def run_held(
        self,
        speculation: Speculation,
        prepare: Callable[[str], tuple[list[ChatMessage], ResolvedOptions]],
    ) -> None:
        """The held reply: waits for the speculative transcript, then prepares the answer to it
        (``prepare``: the LLM's context and the options for that text). Nothing is emitted until
        ``speculation.release`` is called at the end of the turn; until then, a failure or an
        empty transcript just ends it (the turn then answers as usual)."""
        try:
            transcript = await asyncio.shield(speculation.transcript)
        except EngineError:
            return
        text = transcript.text.strip()
        if not text:
            return
        speculation.text = text
        speculation.context, options = prepare(text)
        await self.run(
            self.new_id("resp"),
            self.new_id("item"),
            None,
            None,
            time.monotonic(),
            options=options,
            early=speculation,
        )

    def _on_audio(self, response_id: str, item_id: str, pcm: bytes) -> None:
        if self.machine.state is ConversationState.THINKING:
            self.set_state(ConversationState.SPEAKING)
        self.emit(ev.ResponseAudio(response_id, item_id, pcm))


async def _once(text: str) -> AsyncIterator[str]:
    yield text
