"""One response's output: the message it says or writes (opened with its first words), the
function calls it makes, and the events that report them. The conversation decides when a
response runs and stops; this turns what it produced into items and events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from hark.engines.base import ToolCall
from hark.pipeline import events as ev
from hark.pipeline.items import Item
from hark.pipeline.options import ResolvedOptions
from hark.pipeline.record import Record
from hark.pipeline.responder import Responder, TextReply

log = logging.getLogger("hark.conversation")

Status = Literal["completed", "cancelled", "failed"]


class Reply:
    def __init__(
        self,
        response_id: str,
        item_id: str,
        options: ResolvedOptions,
        *,
        record: Record,
        emit: Callable[[ev.Event], None],
        new_id: Callable[[str], str],
        speech: Callable[[Callable[[str], None]], Responder] | None,
    ) -> None:
        """``speech``: builds the Responder that speaks the reply, given its text callback; None
        for a written reply."""
        self.response_id = response_id
        self.item_id = item_id
        self.options = options
        self._record = record
        self._emit = emit
        self._new_id = new_id
        self.message_open = False
        self._previous: str | None = None
        self.output: Responder | TextReply = (
            speech(self._text)
            if speech is not None and options.output == "audio"
            else TextReply(on_text=self._text)
        )

    def _text(self, delta: str) -> None:
        options = self.options
        if not self.message_open:
            self.message_open = True
            previous = None
            if options.in_conversation:
                previous = self._record.open_reply(self.item_id, audio=options.output == "audio")
                self._previous = previous
            self._emit(
                ev.MessageStarted(
                    self.response_id, self.item_id, previous, options.output, options.in_conversation
                )
            )
        self._emit(ev.ResponseText(self.response_id, self.item_id, delta, options.output))

    def started(self, mode: Literal["llm", "echo"]) -> None:
        o = self.options
        self._emit(
            ev.ResponseStarted(self.response_id, self.item_id, mode, o.output, o.metadata, o.in_conversation)
        )

    def finish(self, status: Status, reason: str | None, calls: list[ToolCall]) -> None:
        """Report the response's end: its message (what was heard), its calls (only when it
        completed: a call cut off is never run), then response.done."""
        options, keep = self.options, self.options.in_conversation
        heard = self.output.full_text() if status == "completed" else self.output.heard()
        output: list[Item] = []
        if self.message_open:
            item = Item(
                self.item_id,
                "message",
                role="assistant",
                text=heard,
                audio=options.output == "audio",
                status="completed" if status == "completed" else "incomplete",
            )
            if keep:
                self._record.reply_done(item)
            output.append(item)
            self._emit(ev.MessageDone(self.response_id, item, options.output, keep, self._previous))
        for call in calls if status == "completed" else []:
            fields = {"call_id": call.id, "name": call.name, "arguments": call.arguments}
            item = Item(self._new_id("item"), "function_call", **fields)  # type: ignore[arg-type]
            previous = self._record.called(item, call) if keep else None
            self._emit(ev.FunctionCalled(self.response_id, item, len(output), previous, keep))
            output.append(item)
        audio_ms = int(self.output.clock.sent_ms)
        self._emit(
            ev.ResponseDone(
                self.response_id,
                self.item_id,
                status,
                heard,
                audio_ms,
                reason,
                options.output,
                options.metadata,
                tuple(output),
                keep,
            )
        )

    def report_latency(self, end_of_speech: float | None, detected: float, transcribed: float) -> None:
        t = self.output.timings

        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000.0, 1)

        latency = ev.Latency(
            self.response_id,
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
