"""One conversation: the conductor between listening, transcribing, thinking and speaking.

It owns the state machine, the history and the tasks of the current turn, and delegates the
work: ``Listener`` (audio → turns), the STT engine (turn → text), the LLM (text → reply text) and
``Responder`` (reply text → paced audio). It reports through ``emit`` and knows no wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from hark.engines.base import LLM, STT, TTS, VAD, ChatMessage, Float32Array, Transcript, TurnModel
from hark.errors import EngineError, EngineSaturated
from hark.pipeline import events as ev
from hark.pipeline.barge_in import BargeIn
from hark.pipeline.conversation_state import ConversationState, StateMachine
from hark.pipeline.errors import (
    CommitTooShort,
    InvalidValue,
    NoActiveResponse,
    ResponseActive,
    UnknownItem,
)
from hark.pipeline.history import History
from hark.pipeline.interruptions import InterruptionPolicy, Verdict
from hark.pipeline.items import Item, ItemLog
from hark.pipeline.listener import Listener, TurnBoundary
from hark.pipeline.options import ResolvedOptions, ResponseOptions, resolve
from hark.pipeline.partials import PartialTranscripts
from hark.pipeline.record import Record
from hark.pipeline.reply import Reply, Status
from hark.pipeline.responder import Responder, TextReply
from hark.pipeline.thinking import MAX_TOOL_ROUNDS, Thought, echo_reply, think
from hark.pipeline.tools import Toolbox
from hark.pipeline.turns import TurnConfig, TurnEvent
from hark.priority import Priority, Work, work_as

__all__ = ["MAX_TOOL_ROUNDS", "Conversation", "ConversationConfig", "LLMStatus", "echo_reply", "new_id"]

log = logging.getLogger("hark.conversation")

MIN_COMMIT_MS = 100


@dataclass(frozen=True, slots=True)
class ConversationConfig:
    system_prompt: str
    history_turns: int
    turn: TurnConfig
    prefix_ms: int
    max_turn_s: float
    partial_interval_ms: int
    output_chunk_ms: int
    output_lead_ms: int
    language: str | None = None
    speculative_transcript: bool = True
    """Transcribe at a pause, before the turn is known to be over."""
    speculative_reply: bool = True
    """Start the reply (LLM and first TTS) at a pause, before the turn is known to be over."""
    interruptions: InterruptionPolicy = field(default_factory=InterruptionPolicy)
    """Speech over a spoken reply: backchannels and self-speech that do not interrupt it."""


@dataclass(slots=True)
class _Speculation:
    """What started at a pause inside a turn: a transcription of the speech so far and, once it
    is in, a reply prepared from it but held back. If the turn ends on this pause both are used
    as they are; if the user goes on, both are dropped without a trace."""

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


@dataclass(frozen=True, slots=True)
class LLMStatus:
    mode: str
    """"llm" when a model answers, "echo" when none is configured or reachable."""
    message: str
    setting: str | None = None


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class Conversation:
    def __init__(
        self,
        *,
        vad: VAD,
        stt: STT,
        tts: TTS,
        llm: LLM | None,
        config: ConversationConfig,
        emit: Callable[[ev.Event], None],
        input_rate: int = 24_000,
        output_rate: int = 24_000,
        tools: Toolbox | None = None,
        turn_model: TurnModel | None = None,
    ) -> None:
        self._stt = stt
        self._tts = tts
        self._llm = llm
        self._tools = tools
        self.config = config
        self._emit = emit
        self.output_rate = output_rate
        self.listener = Listener(
            vad,
            config.turn,
            input_rate=input_rate,
            prefix_ms=config.prefix_ms,
            max_turn_s=config.max_turn_s,
            turn_model=turn_model,
        )
        self.record = Record(config.system_prompt, config.history_turns)
        self.machine = StateMachine()
        self.auto_respond = True
        self.interrupt = True
        """Whether the user's speech cuts off the reply being spoken (barge-in)."""
        self.instructions: str | None = None
        self.defaults = ResponseOptions()
        """The session's reply settings (tools, output, …); a response.create may override them."""
        self._item_id: str | None = None
        self._speech_start_ms = 0
        self._partials = PartialTranscripts(
            stt,
            language=config.language,
            interval_ms=config.partial_interval_ms,
            emit=emit,
            current_item=lambda: self._item_id,
        )
        self._speculative: _Speculation | None = None
        self.barge = BargeIn(
            config.interruptions, stt, language=config.language, emit=emit, interrupt=self._interrupted
        )
        """Decides whether speech over a spoken reply interrupts it (pipeline/barge_in.py)."""
        self._settling: asyncio.Task[None] | None = None
        self._transcribing: asyncio.Task[str | None] | None = None
        self._response_task: asyncio.Task[None] | None = None
        self._cancel_reasons: dict[asyncio.Task[None], str] = {}
        """Why a response task was cancelled, for its response.done (read by the task itself)."""
        self._response: tuple[str, str, Responder | TextReply] | None = None
        self._replies: dict[str, Responder | TextReply] = {}

    # -- input ---------------------------------------------------------------------------

    @property
    def turn_detection(self) -> bool:
        return self.listener.vad_enabled

    def set_turn_detection(self, enabled: bool) -> None:
        # New turn-detection settings forget the turn in progress (here, or listener.configure).
        self._cancel_speculative()
        if enabled != self.listener.vad_enabled:
            self.listener.reset()
            self.listener.vad_enabled = enabled

    def configure_turns(
        self,
        turn: TurnConfig | None,
        *,
        prefix_ms: int = 300,
        create_response: bool = True,
        interrupt_response: bool = True,
    ) -> None:
        """Server turn detection with these settings, or (``turn`` None) the client commits turns."""
        self.set_turn_detection(turn is not None)
        self.auto_respond = turn is None or create_response
        self.interrupt = turn is None or interrupt_response
        if turn is not None:
            self.listener.configure(turn, prefix_ms=prefix_ms)

    def configure(self, options: ResponseOptions) -> None:
        """session.update: the fields set in ``options`` become the session's reply settings."""
        if options.instructions is not None:
            self.instructions = options.instructions
        self.defaults = self.defaults.merged(options)

    def restore(self, entries: list[tuple[str, ChatMessage]], instructions: str | None) -> None:
        """A resumed session's history and instructions."""
        self.record.restore(entries)
        self.instructions = instructions

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
        self._cancel_speculative()
        # Over a spoken reply the speech pauses it and its words decide (barge_in.py); with
        # interrupt_response off the reply goes on and the speech is a turn of its own.
        over_reply = self._pause_reply() if self.interrupt else self.responding
        if self.interrupt and not over_reply:
            self._barge_in()
        self._item_id = new_id("item")
        self._speech_start_ms = boundary.audio_ms
        self._partials.restart()
        self._emit(ev.SpeechStarted(self._item_id, boundary.audio_ms))
        if not over_reply:
            self._set_state(ConversationState.LISTENING)

    def _pause_reply(self) -> bool:
        if self._response is None:
            return False
        response_id, item_id, output = self._response
        return isinstance(output, Responder) and self.barge.begin(response_id, item_id, output)

    def _paused(self, boundary: TurnBoundary) -> None:
        """A short silence: transcribe what was said so far now, while the end-of-turn silence
        runs on. If the turn ends on this silence the result is the final transcript; if the user
        goes on, it is thrown away (speculative end of turn)."""
        if self.barge.deciding:  # speech over a reply: is it words?
            self.barge.paused(boundary.audio_ms, self.listener.utterance())
            return
        if self._item_id is None or not self.config.speculative_transcript:
            return
        self._cancel_speculative()
        self._partials.cancel()
        audio = self.listener.utterance()
        with work_as(Priority.SPECULATIVE) as work:  # its tasks, the held reply's too, share it
            transcript = asyncio.create_task(self._stt.transcribe(audio, language=self.config.language))
            speculation = _Speculation(boundary.audio_ms, transcript, work)
            if self.auto_respond and self.config.speculative_reply and not self.responding:
                speculation.reply = asyncio.create_task(self._respond_early(speculation))
        self._speculative = speculation

    def _cancel_speculative(self) -> None:
        if self._speculative is not None:
            self._speculative.transcript.cancel()
            if self._speculative.reply is not None:
                self._speculative.reply.cancel()
            self._speculative = None

    def _speech_stopped(self, boundary: TurnBoundary) -> None:
        item_id = self._item_id or new_id("item")
        self._item_id = None
        self._emit(ev.SpeechStopped(item_id, boundary.audio_ms))
        if self.barge.deciding:
            audio = self.listener.take_utterance()
            self._settling = asyncio.create_task(self._settle(item_id, boundary, audio))
            return
        speculation = None
        if self._speculative is not None and self._speculative.audio_ms == boundary.audio_ms:
            # The turn ended on the silence the speculation started at.
            speculation, self._speculative = self._speculative, None
            speculation.work.promote()  # now it is this turn's transcript (and maybe its reply)
        self._cancel_speculative()
        if speculation is not None and self._release_early(item_id, speculation, boundary.wall_time):
            return
        if speculation is not None and speculation.reply is not None:
            speculation.reply.cancel()
        self._commit(
            item_id,
            end_of_speech=boundary.wall_time,
            speculative=speculation.transcript if speculation is not None else None,
        )

    def _release_early(self, item_id: str, speculation: _Speculation, end_of_speech: float) -> bool:
        """Let the held reply speak, if it is still good: its transcript is this turn's, the turn
        is to be answered, nothing else answers, no earlier transcript is still to be reported
        (events stay in order) and the LLM was asked with the conversation as it is now."""
        reply, release, text = speculation.reply, speculation.release, speculation.text
        if reply is None or reply.done() or release is None or not text or not self.auto_respond:
            return False
        if self.responding or (self._transcribing is not None and not self._transcribing.done()):
            return False
        if speculation.context != self.history.messages(self.instructions, pending_user=text):
            return False  # e.g. an earlier turn's words came in after the LLM was asked
        detected = time.monotonic()
        self._accept_input(item_id)
        self._transcript_in(item_id, text)
        self._transcribing = None
        self._set_state(ConversationState.THINKING)
        self._response_task = reply
        release(end_of_speech, detected)
        return True

    async def _settle(self, item_id: str, boundary: TurnBoundary, audio: Float32Array) -> None:
        """Speech over a reply ended: a turn if it had real words, else dropped without a trace."""
        verdict, transcript = await self.barge.settle(boundary.audio_ms, audio)
        if verdict is not Verdict.WORDS:
            self._emit(ev.SpeechIgnored(item_id, verdict.value))
            return
        self._commit(item_id, end_of_speech=boundary.wall_time, speculative=transcript, audio=audio)

    def commit(self) -> str:
        """Commit what was appended (client-side turn detection). Raises CommitTooShort."""
        if self.listener.utterance_ms() < MIN_COMMIT_MS:
            raise CommitTooShort(f"buffer too small: commit needs at least {MIN_COMMIT_MS} ms of audio")
        item_id = self._item_id or new_id("item")
        self._item_id = None
        self._cancel_speculative()  # the commit, not a pause, ends the turn
        self._commit(item_id, end_of_speech=time.monotonic())
        self.listener.reset()  # a turn the VAD had open ends with the commit
        return item_id

    def clear_input(self) -> None:
        self.listener.reset()
        self._partials.cancel()
        self._cancel_speculative()
        self._item_id = None
        self._emit(ev.InputCleared())
        if self.machine.state is ConversationState.LISTENING:
            self._set_state(ConversationState.IDLE)

    def _accept_input(self, item_id: str, audio: Float32Array | None = None) -> Float32Array:
        audio = self.listener.take_utterance() if audio is None else audio
        self._partials.cancel()
        previous = self.record.user_audio(item_id)
        self._emit(ev.InputCommitted(item_id, previous))
        return audio

    def _commit(
        self,
        item_id: str,
        *,
        end_of_speech: float,
        speculative: asyncio.Task[Transcript] | None = None,
        audio: Float32Array | None = None,
    ) -> None:
        audio = self._accept_input(item_id, audio)
        detected = time.monotonic()
        previous = self._transcribing
        with work_as(Priority.FINAL):
            self._transcribing = asyncio.create_task(self._transcribe(item_id, audio, previous, speculative))
        # interrupt_response off: a reply still being given is not replaced (as OpenAI documents).
        if self.auto_respond and (self.interrupt or not self.responding):
            self._set_state(ConversationState.THINKING)
            self._start_response(wait_for=self._transcribing, end_of_speech=end_of_speech, detected=detected)
        elif self.machine.state is ConversationState.LISTENING:
            self._set_state(ConversationState.IDLE)

    # -- transcription -------------------------------------------------------------------

    def _maybe_partial(self) -> None:
        if self._speculative is not None and not self._speculative.transcript.done():
            return  # the speculative transcription is this moment's partial
        self._partials.maybe(self.listener.utterance_ms(), self.listener.utterance)

    async def _transcribe(
        self,
        item_id: str,
        audio: Float32Array,
        previous: asyncio.Task[str | None] | None,
        speculative: asyncio.Task[Transcript] | None = None,
    ) -> str | None:
        if previous is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await previous
        try:
            if speculative is not None:
                try:
                    transcript = await speculative
                except (EngineError, asyncio.CancelledError):
                    transcript = await self._stt.transcribe(audio, language=self.config.language)
            else:
                transcript = await self._stt.transcribe(audio, language=self.config.language)
        except EngineError as exc:
            log.warning("transcription failed", extra={"engine": exc.engine, "retryable": exc.retryable})
            self._emit(ev.TranscriptFailed(item_id, str(exc), isinstance(exc, EngineSaturated)))
            return None
        text = transcript.text.strip()
        self._transcript_in(item_id, text)
        return text

    def _transcript_in(self, item_id: str, text: str) -> None:
        self._emit(ev.TranscriptFinal(item_id, text))
        self.record.user_transcript(item_id, text)

    # -- responses -----------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No turn in progress: nobody speaking, nothing being transcribed or said."""
        transcribing = self._transcribing is not None and not self._transcribing.done()
        return not (self.listener.in_speech or transcribing or self.responding)

    @property
    def responding(self) -> bool:
        return self._response_task is not None and not self._response_task.done()

    def create_response(self, options: ResponseOptions | None = None) -> str:
        """Answer the conversation so far (response.create), with ``options`` for this response
        only. Returns the response id. Raises ResponseActive when busy, UnknownItem when an
        out-of-band ``input`` names an item that is not in the conversation."""
        if self.responding:
            raise ResponseActive("a response is already in progress")
        context = self._context_of(options)
        if self._speculative is not None and self._speculative.reply is not None:
            self._speculative.reply.cancel()  # the client's response replaces the held one
            self._speculative.reply = None
        self._set_state(ConversationState.THINKING)
        pending = self._transcribing if self._transcribing and not self._transcribing.done() else None
        resolved = resolve(self.defaults, self.instructions, options, context)
        return self._start_response(
            wait_for=pending, end_of_speech=None, detected=time.monotonic(), options=resolved
        )

    def _context_of(self, options: ResponseOptions | None) -> list[ChatMessage] | None:
        """The messages an out-of-band response with ``input`` answers (None: the history)."""
        if options is None or options.input is None:
            return None
        instructions = options.instructions if options.instructions is not None else self.instructions
        return self.record.context(options.input, instructions)

    def say(self, text: str) -> str:
        """Speak ``text`` as the assistant's next reply, without the LLM (a phone call's greeting):
        paced, interruptible and cut to what was heard like any reply. Returns the response id.
        Raises ResponseActive when busy."""
        if self.responding:
            raise ResponseActive("a response is already in progress")
        self._set_state(ConversationState.THINKING)
        response_id = new_id("resp")
        options = resolve(self.defaults, self.instructions, None)
        self._response_task = asyncio.create_task(
            self._respond(
                response_id, new_id("item"), None, None, time.monotonic(), options=options, fixed=text
            )
        )
        return response_id

    def _start_response(
        self,
        *,
        wait_for: asyncio.Task[str | None] | None,
        end_of_speech: float | None,
        detected: float,
        options: ResolvedOptions | None = None,
    ) -> str:
        self._cancel_response(reason="turn_detected")  # a new turn replaces the reply in progress
        response_id = new_id("resp")
        item_id = new_id("item")
        options = options or resolve(self.defaults, self.instructions, None)
        with work_as(Priority.FINAL):  # the reply being spoken
            self._response_task = asyncio.create_task(
                self._respond(response_id, item_id, wait_for, end_of_speech, detected, options=options)
            )
        return response_id

    async def _respond_early(self, speculation: _Speculation) -> None:
        """The held reply: waits for the speculative transcript, then prepares the answer to it.
        Nothing is emitted until ``speculation.release`` is called at the end of the turn; until
        then, a failure or an empty transcript just ends it (the turn then answers as usual)."""
        try:
            transcript = await asyncio.shield(speculation.transcript)
        except EngineError:
            return
        text = transcript.text.strip()
        if not text:
            return
        speculation.text = text
        speculation.context = self.history.messages(self.instructions, pending_user=text)
        options = resolve(self.defaults, self.instructions, None, speculation.context)
        await self._respond(
            new_id("resp"), new_id("item"), None, None, time.monotonic(), options=options, early=speculation
        )

    async def _respond(
        self,
        response_id: str,
        item_id: str,
        wait_for: asyncio.Task[str | None] | None,
        end_of_speech: float | None,
        detected: float,
        *,
        options: ResolvedOptions,
        early: _Speculation | None = None,
        fixed: str | None = None,
    ) -> None:
        user_text: str | None = None
        if early is not None:
            user_text = early.text
        elif wait_for is not None:
            # Shielded: a barge-in cancels this reply, not the transcript of what was said. A
            # transcript already in (it often is: its task ran first) costs no extra loop pass.
            user_text = wait_for.result() if wait_for.done() else await asyncio.shield(wait_for)
            if not user_text:
                # Noise, not words (or a failed transcription, already reported): nothing to answer.
                self._set_state(ConversationState.IDLE)
                return
        transcribed = time.monotonic()
        mode: Literal["llm", "echo"] = "llm" if self._llm is not None else "echo"
        hold = asyncio.Event() if early is not None else None

        def speech(on_text: Callable[[str], None]) -> Responder:
            return Responder(
                self._tts,
                output_rate=self.output_rate,
                chunk_ms=self.config.output_chunk_ms,
                lead_ms=self.config.output_lead_ms,
                on_text=on_text,
                on_audio=lambda pcm: self._on_reply_audio(response_id, item_id, pcm),
                hold=hold,
            )

        reply = Reply(
            response_id, item_id, options, record=self.record, emit=self._emit, new_id=new_id, speech=speech
        )
        opened = False

        def open_response(speech_end: float | None, turn_detected: float) -> None:
            nonlocal opened, end_of_speech, detected
            end_of_speech, detected, opened = speech_end, turn_detected, True
            self._response = (response_id, item_id, reply.output)
            self._replies[item_id] = reply.output
            while len(self._replies) > 8:
                self._replies.pop(next(iter(self._replies)))
            reply.started(mode)
            if hold is not None:
                hold.set()

        if early is None:
            open_response(end_of_speech, detected)
        else:
            early.release = open_response
        status: Status = "completed"
        reason: str | None = None
        history = self.history.messages(options.instructions)
        thought = Thought(
            options.context if options.context is not None else history,
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
                    self._llm,
                    self._tools,
                    thought,
                    user_text=user_text or self.history.last_user_text(),
                    on_unavailable=lambda m: self._emit(ev.ConversationError("llm_unavailable", m)),
                    confirmed=hold,
                )
            )
            await reply.output.run(source)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            status = "cancelled"
            reason = self._cancel_reasons.pop(task, "turn_detected") if task is not None else "turn_detected"
            raise
        except EngineError as exc:
            status, reason, saturated = "failed", str(exc), isinstance(exc, EngineSaturated)
            if opened:
                self._emit(ev.ConversationError("engine_error", reason))
        finally:
            # A held reply never released leaves no trace: nothing was said, nothing is reported.
            if opened:
                reply.report_latency(end_of_speech, detected, transcribed)
                self._response = None
                reply.finish(status, reason, thought.client_calls, saturated=saturated)
                if status != "cancelled" and self.machine.state is not ConversationState.LISTENING:
                    self._set_state(ConversationState.IDLE)

    def _on_reply_audio(self, response_id: str, item_id: str, pcm: bytes) -> None:
        if self.machine.state is ConversationState.THINKING:
            self._set_state(ConversationState.SPEAKING)
        self._emit(ev.ResponseAudio(response_id, item_id, pcm))

    # -- items the client adds, reads and deletes ----------------------------------------

    @property
    def history(self) -> History:
        """What the LLM is sent (the newest turns)."""
        return self.record.history

    @property
    def items(self) -> ItemLog:
        return self.record.items

    def add_item(self, item: Item, *, after: str | None = None) -> Item:
        """conversation.item.create. Raises DuplicateItem, UnknownItem (``after``) or UnknownCall
        (an output for a call this conversation does not know)."""
        previous = self.record.add(item, after=after)
        self._emit(ev.ItemAdded(item, previous))
        return item

    def get_item(self, item_id: str) -> Item:
        """conversation.item.retrieve; raises UnknownItem."""
        return self.record.get(item_id)

    def delete_item(self, item_id: str) -> None:
        """conversation.item.delete: gone from the record and from what the LLM is sent."""
        self.record.delete(item_id)
        self._replies.pop(item_id, None)
        self._emit(ev.ItemDeleted(item_id))

    # -- interruption --------------------------------------------------------------------

    def _interrupted(self) -> None:
        """The speech over the reply had real words: barge in."""
        self._barge_in()
        self._set_state(ConversationState.LISTENING)

    def _barge_in(self) -> None:
        if self._response is not None:
            response_id, item_id, _ = self._response
            self._emit(ev.OutputCleared(response_id, item_id))
        self._cancel_response(reason="turn_detected")

    def cancel_response(self, *, strict: bool = False) -> bool:
        """response.cancel; False when nothing was in progress (``strict``: NoActiveResponse)."""
        if not self.responding:
            if strict:
                raise NoActiveResponse("no response in progress")
            return False
        if self._response is not None:
            response_id, item_id, _ = self._response
            self._emit(ev.OutputCleared(response_id, item_id))
        self._cancel_response(reason="client_cancelled")
        self.barge.reset()
        if self.machine.state is not ConversationState.LISTENING:
            self._set_state(ConversationState.IDLE)  # so that a new response can start
        return True

    def _cancel_response(self, *, reason: str) -> None:
        for task in [t for t in self._cancel_reasons if t.done()]:
            del self._cancel_reasons[task]  # cancelled before it ever ran
        if self._response_task is not None and not self._response_task.done():
            self._cancel_reasons[self._response_task] = reason
            self._response_task.cancel()
        self._response_task = None

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """The client played only ``audio_end_ms`` of an assistant item: keep only those words."""
        responder = self._replies.get(item_id)
        if responder is None:
            raise UnknownItem(f"no assistant audio item {item_id[:64]!r}")
        if audio_end_ms > responder.clock.peak_ms + 1:
            raise InvalidValue(
                f"audio_end_ms {audio_end_ms} is beyond the item's {int(responder.clock.peak_ms)} ms",
                param="audio_end_ms",
            )
        self.record.truncated(item_id, responder.heard(float(audio_end_ms)))
        self._emit(ev.ItemTruncated(item_id, audio_end_ms))

    # -- lifecycle -----------------------------------------------------------------------

    def _set_state(self, state: ConversationState) -> None:
        if self.machine.move(state):
            self._emit(ev.StateChanged(state))

    async def aclose(self) -> None:
        # Stop every task of the turn, a held reply included, and wait until they have stopped.
        self.barge.reset()
        tasks: list[asyncio.Task[Any]] = [
            t
            for t in (self._partials.task, self._response_task, self._transcribing, self._settling)
            if t is not None
        ]
        if self._speculative is not None:
            tasks += [t for t in (self._speculative.transcript, self._speculative.reply) if t is not None]
        self._partials.task = self._response_task = self._speculative = self._settling = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _once(text: str) -> AsyncIterator[str]:
    yield text
