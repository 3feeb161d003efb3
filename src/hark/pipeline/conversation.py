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
from dataclasses import dataclass
from typing import Any, Literal

from hark.engines.base import LLM, STT, TTS, VAD, ChatMessage, Float32Array, LLMOptions, ToolCall, Transcript
from hark.errors import EngineError, EngineSaturated, EngineUnavailable
from hark.pipeline import events as ev
from hark.pipeline.history import History
from hark.pipeline.listener import Listener, TurnBoundary
from hark.pipeline.responder import Responder
from hark.pipeline.state import ConversationState, StateMachine
from hark.pipeline.tools import Toolbox
from hark.pipeline.turns import TurnConfig, TurnEvent
from hark.priority import Priority, Work, work_as

log = logging.getLogger("hark.conversation")

MIN_COMMIT_MS = 100
MAX_TOOL_ROUNDS = 3


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
    ) -> None:
        self._stt = stt
        self._tts = tts
        self._llm = llm
        self._tools = tools
        self.config = config
        self._emit = emit
        self.output_rate = output_rate
        self.listener = Listener(
            vad, config.turn, input_rate=input_rate, prefix_ms=config.prefix_ms, max_turn_s=config.max_turn_s
        )
        self.history = History(config.system_prompt, config.history_turns)
        self.machine = StateMachine()
        self.auto_respond = True
        self.interrupt = True
        """Whether the user's speech cuts off the reply being spoken (barge-in)."""
        self.instructions: str | None = None
        self._item_id: str | None = None
        self._last_item_id: str | None = None
        self._speech_start_ms = 0
        self._partial_task: asyncio.Task[None] | None = None
        self._speculative: _Speculation | None = None
        self._partial_text = ""
        self._partial_at_ms = 0
        self._transcribing: asyncio.Task[str | None] | None = None
        self._response_task: asyncio.Task[None] | None = None
        self._cancel_reasons: dict[asyncio.Task[None], str] = {}
        """Why a response task was cancelled, for its response.done (read by the task itself)."""
        self._response: tuple[str, str, Responder] | None = None
        self._replies: dict[str, Responder] = {}

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

    async def push_audio(self, pcm: bytes) -> None:
        for boundary in await self.listener.push(pcm):
            if boundary.event is TurnEvent.SPEECH_STARTED:
                self._speech_started(boundary)
            elif boundary.event is TurnEvent.PAUSED:
                self._paused(boundary)
            else:
                self._speech_stopped(boundary)
        if self.listener.in_speech and self.config.partial_interval_ms:
            self._maybe_partial()

    def _speech_started(self, boundary: TurnBoundary) -> None:
        self._cancel_speculative()
        if self.interrupt:
            self._barge_in()
        self._item_id = new_id("item")
        self._speech_start_ms = boundary.audio_ms
        self._partial_text = ""
        self._partial_at_ms = 0
        self._emit(ev.SpeechStarted(self._item_id, boundary.audio_ms))
        self._set_state(ConversationState.LISTENING)

    def _paused(self, boundary: TurnBoundary) -> None:
        """A short silence: transcribe what was said so far now, while the end-of-turn silence
        runs on. If the turn ends on this silence the result is the final transcript; if the user
        goes on, it is thrown away (speculative end of turn)."""
        if self._item_id is None or not self.config.speculative_transcript:
            return
        self._cancel_speculative()
        self._cancel_partial()
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
        self._emit(ev.TranscriptFinal(item_id, text))
        self.history.add(item_id, "user", text)
        self._transcribing = None
        self._set_state(ConversationState.THINKING)
        self._response_task = reply
        release(end_of_speech, detected)
        return True

    def commit(self) -> str:
        """Commit what was appended (client-side turn detection). Raises ValueError when empty."""
        if self.listener.utterance_ms() < MIN_COMMIT_MS:
            raise ValueError(f"buffer too small: commit needs at least {MIN_COMMIT_MS} ms of audio")
        item_id = self._item_id or new_id("item")
        self._item_id = None
        self._cancel_speculative()  # the commit, not a pause, ends the turn
        self._commit(item_id, end_of_speech=time.monotonic())
        self.listener.reset()  # a turn the VAD had open ends with the commit
        return item_id

    def clear_input(self) -> None:
        self.listener.reset()
        self._cancel_partial()
        self._cancel_speculative()
        self._item_id = None
        self._emit(ev.InputCleared())
        if self.machine.state is ConversationState.LISTENING:
            self._set_state(ConversationState.IDLE)

    def _accept_input(self, item_id: str) -> Float32Array:
        audio = self.listener.take_utterance()
        self._cancel_partial()
        self._emit(ev.InputCommitted(item_id, self._last_item_id))
        self._last_item_id = item_id
        return audio

    def _commit(
        self, item_id: str, *, end_of_speech: float, speculative: asyncio.Task[Transcript] | None = None
    ) -> None:
        audio = self._accept_input(item_id)
        detected = time.monotonic()
        previous = self._transcribing
        with work_as(Priority.FINAL):
            self._transcribing = asyncio.create_task(self._transcribe(item_id, audio, previous, speculative))
        if self.auto_respond:
            self._set_state(ConversationState.THINKING)
            self._start_response(wait_for=self._transcribing, end_of_speech=end_of_speech, detected=detected)
        elif self.machine.state is ConversationState.LISTENING:
            self._set_state(ConversationState.IDLE)

    # -- transcription -------------------------------------------------------------------

    def _maybe_partial(self) -> None:
        if self._speculative is not None and not self._speculative.transcript.done():
            return  # the speculative transcription is this moment's partial
        heard_ms = self.listener.utterance_ms()
        if self._partial_task is not None or heard_ms - self._partial_at_ms < self.config.partial_interval_ms:
            return
        self._partial_at_ms = heard_ms
        item_id = self._item_id
        if item_id is None:
            return
        audio = self.listener.utterance()
        with work_as(Priority.PARTIAL):  # first to be shed under load
            self._partial_task = asyncio.create_task(self._partial(item_id, audio))

    async def _partial(self, item_id: str, audio: Float32Array) -> None:
        try:
            transcript = await self._stt.transcribe(audio, language=self.config.language)
        except EngineError:
            return  # A partial is a courtesy; the final transcript reports failures.
        finally:
            if self._partial_task is asyncio.current_task():
                self._partial_task = None
        text = transcript.text
        if item_id != self._item_id or not text or text == self._partial_text:
            return
        delta = text[len(self._partial_text) :] if text.startswith(self._partial_text) else ""
        self._partial_text = text
        self._emit(ev.TranscriptPartial(item_id, delta, text))

    def _cancel_partial(self) -> None:
        if self._partial_task is not None:
            self._partial_task.cancel()
            self._partial_task = None

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
        self._emit(ev.TranscriptFinal(item_id, text))
        if text:
            self.history.add(item_id, "user", text)
        return text

    # -- responses -----------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No turn in progress: nobody speaking, nothing being transcribed or said."""
        transcribing = self._transcribing is not None and not self._transcribing.done()
        return not (self.listener.in_speech or transcribing or self.responding)

    @property
    def responding(self) -> bool:
        return self._response_task is not None and not self._response_task.done()

    def create_response(self) -> None:
        """Answer the conversation so far (response.create). Raises RuntimeError when busy."""
        if self.responding:
            raise RuntimeError("a response is already in progress")
        if self._speculative is not None and self._speculative.reply is not None:
            self._speculative.reply.cancel()  # the client's response replaces the held one
            self._speculative.reply = None
        self._set_state(ConversationState.THINKING)
        pending = self._transcribing if self._transcribing and not self._transcribing.done() else None
        self._start_response(wait_for=pending, end_of_speech=None, detected=time.monotonic())

    def _start_response(
        self, *, wait_for: asyncio.Task[str | None] | None, end_of_speech: float | None, detected: float
    ) -> None:
        self._cancel_response(reason="turn_detected")  # a new turn replaces the reply in progress
        response_id = new_id("resp")
        item_id = new_id("item")
        with work_as(Priority.FINAL):  # the reply being spoken
            self._response_task = asyncio.create_task(
                self._respond(response_id, item_id, wait_for, end_of_speech, detected)
            )

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
        await self._respond(new_id("resp"), new_id("item"), None, None, time.monotonic(), early=speculation)

    async def _respond(
        self,
        response_id: str,
        item_id: str,
        wait_for: asyncio.Task[str | None] | None,
        end_of_speech: float | None,
        detected: float,
        *,
        early: _Speculation | None = None,
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
        responder = Responder(
            self._tts,
            output_rate=self.output_rate,
            chunk_ms=self.config.output_chunk_ms,
            lead_ms=self.config.output_lead_ms,
            on_text=lambda delta: self._emit(ev.ResponseText(response_id, item_id, delta)),
            on_audio=lambda pcm: self._on_reply_audio(response_id, item_id, pcm),
            hold=hold,
        )
        opened = False

        def open_response(speech_end: float | None, turn_detected: float) -> None:
            nonlocal opened, end_of_speech, detected
            end_of_speech, detected, opened = speech_end, turn_detected, True
            self._response = (response_id, item_id, responder)
            self._replies[item_id] = responder
            while len(self._replies) > 8:
                self._replies.pop(next(iter(self._replies)))
            self._emit(ev.ResponseStarted(response_id, item_id, mode))
            if hold is not None:
                hold.set()

        if early is None:
            open_response(end_of_speech, detected)
        else:
            early.release = open_response
        status: Literal["completed", "cancelled", "failed"] = "completed"
        reason: str | None = None
        saturated = False
        try:
            context = early.context if early is not None else None
            await responder.run(self._reply_text(user_text, context, confirmed=hold))
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
                self._report_latency(response_id, responder, end_of_speech, detected, transcribed)
                self._finish_response(response_id, item_id, responder, status, reason, saturated)

    def _finish_response(
        self,
        response_id: str,
        item_id: str,
        responder: Responder,
        status: Literal["completed", "cancelled", "failed"],
        reason: str | None,
        saturated: bool = False,
    ) -> None:
        self._response = None
        heard = responder.full_text() if status == "completed" else responder.heard()
        if heard:
            self.history.add(item_id, "assistant", heard)
        self._emit(
            ev.ResponseDone(
                response_id, item_id, status, heard, int(responder.clock.sent_ms), reason, saturated
            )
        )
        if status != "cancelled" and self.machine.state is not ConversationState.LISTENING:
            self._set_state(ConversationState.IDLE)

    async def _reply_text(
        self,
        user_text: str | None,
        messages: list[ChatMessage] | None = None,
        *,
        confirmed: asyncio.Event | None = None,
    ) -> AsyncIterator[str]:
        """The LLM's reply; the labelled echo when no LLM is configured or it cannot be reached
        before its first word. A failure after the first word ends the turn (never replayed).

        ``messages``: what to send the LLM; by default the history as it is now.
        ``confirmed``: set once a held reply may act; until then it runs no tools (they may have
        effects) and reports nothing."""
        if user_text is None:
            user_text = self.history.last_user_text()
        if self._llm is None:
            yield echo_reply(user_text, None)
            return
        if messages is None:
            messages = self.history.messages(self.instructions)
        tools = self._tools.specs if self._tools is not None else ()
        started = False
        try:
            for round_ in range(MAX_TOOL_ROUNDS + 1):
                # The last round offers no tools, so the LLM has to answer in words.
                options = LLMOptions(tools=tools if round_ < MAX_TOOL_ROUNDS else ())
                text: list[str] = []
                calls: list[ToolCall] = []
                async for chunk in self._llm.stream(messages, options):
                    if isinstance(chunk, ToolCall):
                        calls.append(chunk)
                        continue
                    started = True
                    text.append(chunk)
                    yield chunk
                if not calls or self._tools is None:
                    return
                # Words already spoken stay said; each call runs once and the LLM goes on from there.
                messages = [*messages, ChatMessage("assistant", "".join(text), tool_calls=tuple(calls))]
                if confirmed is not None:
                    await confirmed.wait()
                for call in calls:
                    log.info("tool call", extra={"tool": call.name})
                    result = await self._tools.run(call)
                    messages.append(ChatMessage("tool", result, tool_call_id=call.id))
        except EngineError as exc:
            if started:
                raise
            if confirmed is not None:
                await confirmed.wait()
            log.warning("LLM unavailable, answering in echo mode", extra={"engine": exc.engine})
            self._emit(ev.ConversationError("llm_unavailable", f"no language model answered: {exc}"))
            reason = "unreachable" if isinstance(exc, EngineUnavailable) else "failed"
            yield echo_reply(user_text, reason)

    def _on_reply_audio(self, response_id: str, item_id: str, pcm: bytes) -> None:
        if self.machine.state is ConversationState.THINKING:
            self._set_state(ConversationState.SPEAKING)
        self._emit(ev.ResponseAudio(response_id, item_id, pcm))

    def _report_latency(
        self,
        response_id: str,
        responder: Responder,
        end_of_speech: float | None,
        detected: float,
        transcribed: float,
    ) -> None:
        t = responder.timings

        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000.0, 1)

        latency = ev.Latency(
            response_id,
            end_of_turn_ms=ms(end_of_speech, detected),
            stt_ms=ms(end_of_speech, transcribed),
            llm_ttft_ms=ms(t.started, t.first_text),
            tts_ttfb_ms=ms(t.first_sentence, t.first_audio_ready),
            voice_to_voice_ms=ms(end_of_speech, t.first_audio_sent),
        )
        log.info(
            "turn latency",
            extra={
                "end_of_turn_ms": latency.end_of_turn_ms,
                "stt_ms": latency.stt_ms,
                "llm_ttft_ms": latency.llm_ttft_ms,
                "tts_ttfb_ms": latency.tts_ttfb_ms,
                "voice_to_voice_ms": latency.voice_to_voice_ms,
            },
        )
        self._emit(latency)

    # -- interruption --------------------------------------------------------------------

    def _barge_in(self) -> None:
        if self._response is not None:
            response_id, item_id, _ = self._response
            self._emit(ev.OutputCleared(response_id, item_id))
        self._cancel_response(reason="turn_detected")

    def cancel_response(self) -> bool:
        """response.cancel; False when nothing was in progress."""
        if not self.responding:
            return False
        if self._response is not None:
            response_id, item_id, _ = self._response
            self._emit(ev.OutputCleared(response_id, item_id))
        self._cancel_response(reason="client_cancelled")
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
            raise KeyError(item_id)
        if audio_end_ms > responder.clock.sent_ms + 1:
            raise ValueError(
                f"audio_end_ms {audio_end_ms} is beyond the item's {int(responder.clock.sent_ms)} ms"
            )
        heard = responder.heard(float(audio_end_ms))
        if not self.history.replace(item_id, heard) and heard:
            self.history.add(item_id, "assistant", heard)
        self._emit(ev.ItemTruncated(item_id, audio_end_ms))

    # -- lifecycle -----------------------------------------------------------------------

    def _set_state(self, state: ConversationState) -> None:
        if self.machine.move(state):
            self._emit(ev.StateChanged(state))

    async def aclose(self) -> None:
        # Stop every task of the turn, a held reply included, and wait until they have stopped.
        tasks: list[asyncio.Task[Any]] = [
            t for t in (self._partial_task, self._response_task, self._transcribing) if t is not None
        ]
        if self._speculative is not None:
            tasks += [t for t in (self._speculative.transcript, self._speculative.reply) if t is not None]
        self._partial_task = self._response_task = self._speculative = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def echo_reply(user_text: str | None, reason: str | None) -> str:
    heard = (user_text or "").strip()
    if reason == "unreachable":
        lead = "Echo mode: I cannot reach the language model right now."
    elif reason == "failed":
        lead = "Echo mode: the language model failed to answer."
    else:
        lead = "Echo mode."
    return f"{lead} You said: {heard}" if heard else f"{lead} I did not catch any words."
