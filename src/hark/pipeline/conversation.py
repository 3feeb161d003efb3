"""One conversation: the conductor between listening, transcribing, thinking and speaking.

It owns the state machine, the record and the tasks of the current turn, and delegates the
work: ``Intake`` (audio and commits → the user's finished turns: the listener, partials, the
speculation started at a pause, speech over a reply), ``final_transcript`` (turn → text),
``Answerer`` (text → a response: LLM, then ``Responder``'s paced audio) and ``ResponseSlot``
(the one response in progress). It reports through ``emit`` and knows no wire format.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from hark.engines.base import LLM, STT, TTS, VAD, ChatMessage, Float32Array, Transcript, TurnModel
from hark.pipeline import events as ev
from hark.pipeline.answering import Answerer, Speech
from hark.pipeline.conversation_state import ConversationState, StateMachine
from hark.pipeline.errors import NoActiveResponse, ResponseActive
from hark.pipeline.history import History
from hark.pipeline.intake import Intake
from hark.pipeline.items import Item, ItemLog
from hark.pipeline.language import SpeechLanguage
from hark.pipeline.options import ResolvedOptions, ResponseOptions, resolve
from hark.pipeline.record import Record
from hark.pipeline.setup import ConversationConfig, LLMStatus, new_id
from hark.pipeline.slot import ResponseSlot
from hark.pipeline.speculation import Speculation
from hark.pipeline.thinking import MAX_TOOL_ROUNDS, echo_reply
from hark.pipeline.tools import Toolbox
from hark.pipeline.transcribing import final_transcript, transcript_in
from hark.pipeline.turns import TurnConfig
from hark.priority import Priority, work_as

__all__ = ["MAX_TOOL_ROUNDS", "Conversation", "ConversationConfig", "LLMStatus", "echo_reply", "new_id"]


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
        self.config = config
        self._emit = emit
        self.output_rate = output_rate
        self.record = Record(config.system_prompt, config.history_turns)
        self.machine = StateMachine()
        self.auto_respond = True
        self.interrupt = True
        """Whether the user's speech cuts off the reply being spoken (barge-in)."""
        self.instructions: str | None = None
        self.defaults = ResponseOptions()
        """The session's reply settings (tools, output, …); a response.create may override them."""
        self._transcribing: asyncio.Task[str | None] | None = None
        self.slot = ResponseSlot()
        self.language = SpeechLanguage(config.language)
        """What the STT is asked to hear (configure_language); config.language at start."""
        self.intake = Intake(
            vad,
            stt,
            config,
            self.record,
            emit,
            self,
            input_rate=input_rate,
            turn_model=turn_model,
            language=self.language,
        )
        self.listener = self.intake.listener
        self.barge = self.intake.barge
        """Decides whether speech over a spoken reply interrupts it (pipeline/barge_in.py)."""
        self._answerer = Answerer(
            llm,
            tools,
            Speech(
                tts, output_rate, config.output_chunk_ms, config.output_lead_ms, config.first_clause_words
            ),
            self.record,
            self.slot,
            self.machine,
            self.set_state,
            emit,
            new_id,
        )

    # -- input ---------------------------------------------------------------------------

    @property
    def turn_detection(self) -> bool:
        return self.listener.vad_enabled

    def set_turn_detection(self, enabled: bool) -> None:
        self.intake.set_turn_detection(enabled)

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

    def configure_language(self, code: str | None) -> None:
        """session.update: from the next transcription on, hear ``code`` (an ISO-639-1 code, see
        ``language.checked_language``), detect the language (``DETECT_LANGUAGE``) or, with None,
        go back to the server's ``stt.language``."""
        self.language.code = code if code is not None else self.config.language

    def restore(self, entries: list[tuple[str, ChatMessage]], instructions: str | None) -> None:
        """A resumed session's history and instructions."""
        self.record.restore(entries)
        self.instructions = instructions

    async def push_audio(self, pcm: bytes) -> None:
        await self.intake.push_audio(pcm)

    def commit(self) -> str:
        """Commit what was appended (client-side turn detection). Raises CommitTooShort."""
        return self.intake.commit()

    def clear_input(self) -> None:
        self.intake.clear()
        if self.machine.state is ConversationState.LISTENING:
            self.set_state(ConversationState.IDLE)

    # -- the user's turn, answered -------------------------------------------------------

    def turn_ended(self, item_id: str, end_of_speech: float, speculation: Speculation | None) -> None:
        """Server turn detection ended the turn, maybe on the pause ``speculation`` started at."""
        if speculation is not None and self._release_early(item_id, speculation, end_of_speech):
            return
        if speculation is not None and speculation.reply is not None:
            speculation.reply.cancel()
        self.commit_turn(
            item_id,
            end_of_speech=end_of_speech,
            speculative=speculation.transcript if speculation is not None else None,
        )

    def _release_early(self, item_id: str, speculation: Speculation, end_of_speech: float) -> bool:
        """Let the held reply speak, if it is still good: its transcript is this turn's, the turn
        is to be answered, nothing else answers, no earlier transcript is still to be reported
        (events stay in order) and the LLM was asked with the conversation as it is now."""
        reply, release, text = speculation.reply, speculation.release, speculation.text
        if reply is None or reply.done() or release is None or not text or not self.auto_respond:
            return False
        if self.responding or self.slot.ending:
            return False  # the LLM was asked before the reply being cut had been heard to its end
        if self._transcribing is not None and not self._transcribing.done():
            return False
        if speculation.context != self.history.messages(self.instructions, pending_user=text):
            return False  # e.g. an earlier turn's words came in after the LLM was asked
        detected = time.monotonic()
        self.intake.accept(item_id)
        transcript_in(self._emit, self.record, item_id, text)
        self._transcribing = None
        self.set_state(ConversationState.THINKING)
        self.slot.task = reply
        release(end_of_speech, detected)
        return True

    def commit_turn(
        self,
        item_id: str,
        *,
        end_of_speech: float,
        speculative: asyncio.Task[Transcript] | None = None,
        audio: Float32Array | None = None,
    ) -> None:
        """Transcribe the committed turn (``audio``, else the listener's) and answer it."""
        audio = self.intake.accept(item_id, audio)
        detected = time.monotonic()
        previous = self._transcribing
        with work_as(Priority.FINAL):
            self._transcribing = asyncio.create_task(
                final_transcript(
                    self._stt,
                    audio,
                    language=self.language.code,
                    item_id=item_id,
                    previous=previous,
                    speculative=speculative,
                    emit=self._emit,
                    record=self.record,
                )
            )
        # interrupt_response off: a reply still being given is not replaced (as OpenAI documents).
        if self.auto_respond and (self.interrupt or not self.responding):
            self.set_state(ConversationState.THINKING)
            self._start_response(wait_for=self._transcribing, end_of_speech=end_of_speech, detected=detected)
        elif self.machine.state is ConversationState.LISTENING:
            self.set_state(ConversationState.IDLE)

    # -- responses -----------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No turn in progress: nobody speaking, nothing being transcribed or said."""
        transcribing = self._transcribing is not None and not self._transcribing.done()
        return not (self.listener.in_speech or transcribing or self.responding)

    @property
    def responding(self) -> bool:
        return self.slot.busy

    def create_response(self, options: ResponseOptions | None = None) -> str:
        """Answer the conversation so far (response.create), with ``options`` for this response
        only. Returns the response id. Raises ResponseActive when busy, UnknownItem when an
        out-of-band ``input`` names an item that is not in the conversation."""
        if self.responding:
            raise ResponseActive("a response is already in progress")
        context = None  # the history, unless an out-of-band response names its ``input``
        if options is not None and options.input is not None:
            own = options.instructions
            context = self.record.context(options.input, own if own is not None else self.instructions)
        self.intake.speculation.drop_reply()  # the client's response replaces the held one
        self.set_state(ConversationState.THINKING)
        pending = self._transcribing if self._transcribing and not self._transcribing.done() else None
        resolved = resolve(self.defaults, self.instructions, options, context)
        return self._start_response(
            wait_for=pending, end_of_speech=None, detected=time.monotonic(), options=resolved
        )

    def say(self, text: str) -> str:
        """Speak ``text`` as the assistant's next reply, without the LLM (a phone call's greeting):
        paced, interruptible and cut to what was heard like any reply. Returns the response id.
        Raises ResponseActive when busy."""
        if self.responding:
            raise ResponseActive("a response is already in progress")
        self.set_state(ConversationState.THINKING)
        response_id = new_id("resp")
        options = resolve(self.defaults, self.instructions, None)
        self.slot.task = asyncio.create_task(
            self._answerer.run(
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
        self.slot.cancel("turn_detected")  # a new turn replaces the reply in progress
        response_id = new_id("resp")
        item_id = new_id("item")
        options = options or resolve(self.defaults, self.instructions, None)
        with work_as(Priority.FINAL):  # the reply being spoken
            self.slot.task = asyncio.create_task(
                self._answerer.run(response_id, item_id, wait_for, end_of_speech, detected, options=options)
            )
        return response_id

    def hold_reply(self, speculation: Speculation) -> Coroutine[Any, Any, None]:
        """The reply prepared from a speculative transcript, held back until released."""
        return self._answerer.run_held(speculation, self._held_options)

    def _held_options(self, text: str) -> tuple[list[ChatMessage], ResolvedOptions]:
        context = self.history.messages(self.instructions, pending_user=text)
        return context, resolve(self.defaults, self.instructions, None, context)

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
        self.slot.forget(item_id)
        self._emit(ev.ItemDeleted(item_id))

    # -- interruption --------------------------------------------------------------------

    def stop_reply(self, reason: str) -> None:
        """Stop the response in progress; a client drops the audio it has not played yet."""
        if self.slot.current is not None:
            response_id, item_id, _ = self.slot.current
            self._emit(ev.OutputCleared(response_id, item_id))
        self.slot.cancel(reason)

    def cancel_response(self, *, strict: bool = False) -> bool:
        """response.cancel; False when nothing was in progress (``strict``: NoActiveResponse)."""
        if not self.responding:
            if strict:
                raise NoActiveResponse("no response in progress")
            return False
        self.stop_reply("client_cancelled")
        self.barge.reset()
        if self.machine.state is not ConversationState.LISTENING:
            self.set_state(ConversationState.IDLE)  # so that a new response can start
        return True

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """The client played only ``audio_end_ms`` of an assistant item: keep only those words."""
        self.record.truncated(item_id, self.slot.heard(item_id, audio_end_ms))
        self._emit(ev.ItemTruncated(item_id, audio_end_ms))

    # -- lifecycle -----------------------------------------------------------------------

    def set_state(self, state: ConversationState) -> None:
        if self.machine.move(state):
            self._emit(ev.StateChanged(state))

    async def aclose(self) -> None:
        # Stop every task of the turn, a held reply included, and wait until they have stopped.
        tasks = self.intake.stop()  # first, as before the split: the barge-in resets first
        own = [t for t in (self.slot.task, self._transcribing) if t is not None]
        self.slot.task = None
        for task in own:
            task.cancel()
        await asyncio.gather(*tasks, *own, return_exceptions=True)
