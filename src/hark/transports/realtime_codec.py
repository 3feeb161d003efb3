"""The Realtime event codec: client events in (text → typed events), conversation events out
(``ev.Event`` → wire messages). It knows no socket, so any carrier of Realtime events (this
WebSocket endpoint, a WebRTC data channel) can use it byte for byte.

Two knobs chosen when connecting: the dialect (GA, or the beta protocol's event names and
session shape) and whether hark's own ``hark.*`` events are wanted (off by default: strict
clients see only OpenAI's events)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hark.pipeline import events as ev
from hark.pipeline.items import Item
from hark.transports import realtime_beta as beta
from hark.transports import realtime_protocol as rp

VOICE = "hark"
Dialect = Literal["ga", "beta"]
Out = tuple[dict[str, Any] | bytes, str | None]
"""A message for the client, and the response whose reply audio it is (it may then be dropped)."""
Put = Callable[..., None]


@dataclass(frozen=True, slots=True)
class SessionView:
    """What session.created/updated report."""

    id: str
    model: str
    instructions: str
    output: Literal["audio", "text"]
    turn_detection: dict[str, Any] | None
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    max_output_tokens: int | Literal["inf"]
    transcription: dict[str, Any]
    """{model, language}: the language the STT is asked for (null: detected)."""


class RealtimeCodec:
    def __init__(
        self,
        *,
        conversation_id: str,
        dialect: Dialect = "ga",
        hark_events: bool = False,
        binary_audio: bool = False,
    ) -> None:
        self.conversation_id = conversation_id
        self.dialect = dialect
        self.hark_events = hark_events
        self.binary_audio = binary_audio

    # -- client → server -------------------------------------------------------------------

    def decode(self, text: str) -> rp.ClientEvent:
        return rp.parse_client_event(text, dialect=beta.client_to_ga if self.dialect == "beta" else None)

    # -- server → client -------------------------------------------------------------------

    def wire(self, event: dict[str, Any], audio_of: str | None = None) -> list[Out]:
        """A GA server event as this client gets it: hark's own events only when asked for,
        beta names in the beta dialect; [] when this client does not get it."""
        if event["type"].startswith("hark.") and not self.hark_events:
            return []
        if self.dialect == "beta":
            converted = beta.server_to_beta(event)
            return [] if converted is None else [(converted, audio_of)]
        return [(event, audio_of)]

    def error(self, error: rp.ProtocolError) -> list[Out]:
        return self.wire(rp.error_event(error))

    def session(self, kind: Literal["session.created", "session.updated"], view: SessionView) -> list[Out]:
        return self.wire({"type": kind, "session": session_object(view)})

    def retrieved(self, item: Item) -> list[Out]:
        return self.wire({"type": "conversation.item.retrieved", "item": wire_item(item)})

    def encode(self, event: ev.Event) -> list[Out]:
        out: list[Out] = []

        def put(message: dict[str, Any], audio_of: str | None = None) -> None:
            out.extend(self.wire(message, audio_of))

        match event:
            case ev.ResponseAudio(response_id, item_id, pcm) if self.binary_audio:
                out.append((pcm, response_id))
            case ev.ResponseAudio(response_id, item_id, pcm):
                delta = base64.b64encode(pcm).decode("ascii")
                put(
                    {"type": "response.output_audio.delta", **_part(response_id, item_id), "delta": delta},
                    response_id,
                )
            case ev.ResponseText(response_id, item_id, delta, output):
                kind = (
                    "response.output_text.delta"
                    if output == "text"
                    else "response.output_audio_transcript.delta"
                )
                put({"type": kind, **_part(response_id, item_id), "delta": delta})
            case ev.StateChanged(state):
                put({"type": "hark.state", "state": state.value})
            case ev.SpeechStarted(item_id, audio_start_ms):
                put(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": audio_start_ms,
                        "item_id": item_id,
                    }
                )
            case ev.SpeechStopped(item_id, audio_end_ms):
                put(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": audio_end_ms,
                        "item_id": item_id,
                    }
                )
            case ev.InputCommitted(item_id, previous):
                put(
                    {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous}
                )
                user = Item(item_id, "message", role="user", audio=True)
                put(
                    {"type": "conversation.item.added", "previous_item_id": previous, "item": wire_item(user)}
                )
            case ev.InputCleared():
                put({"type": "input_audio_buffer.cleared"})
            case ev.TranscriptPartial(item_id, delta, text):
                put(
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item_id,
                        "content_index": 0,
                        "delta": delta,
                        "transcript": text,
                    }
                )
            case ev.TranscriptFinal(item_id, text):
                put(
                    {
                        "type": "conversation.item.input_audio_transcription.completed",
                        "item_id": item_id,
                        "content_index": 0,
                        "transcript": text,
                        "usage": {"type": "duration", "seconds": 0},
                    }
                )
            case ev.TranscriptFailed(item_id, message):
                error = {"type": "server_error", "code": "transcription_failed", "message": message}
                put(
                    {
                        "type": "conversation.item.input_audio_transcription.failed",
                        "item_id": item_id,
                        "content_index": 0,
                        "error": error,
                    }
                )
            case ev.ResponseStarted():
                response = self._response(
                    event.response_id, "in_progress", [], event.output, event.metadata, event.in_conversation
                )
                put({"type": "response.created", "response": response})
            case ev.MessageStarted(response_id, item_id, previous, output, in_conversation):
                item = wire_item(
                    Item(item_id, "message", role="assistant", audio=output == "audio", status="in_progress")
                )
                put(
                    {
                        "type": "response.output_item.added",
                        "response_id": response_id,
                        "output_index": 0,
                        "item": item,
                    }
                )
                if in_conversation:
                    put({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
                part = (
                    {"type": "audio", "transcript": ""} if output == "audio" else {"type": "text", "text": ""}
                )
                put({"type": "response.content_part.added", **_part(response_id, item_id), "part": part})
            case ev.MessageDone(response_id, item, output, in_conversation, previous):
                self._message_done(put, response_id, item, output, in_conversation, previous)
            case ev.FunctionCalled(response_id, item, index, previous, in_conversation):
                self._function_call(put, response_id, item, index, previous, in_conversation)
            case ev.ResponseDone():
                put({"type": "response.done", "response": self._done(event)})
            case ev.ItemAdded(item, previous):
                wire = wire_item(item)
                put({"type": "conversation.item.added", "previous_item_id": previous, "item": wire})
                put({"type": "conversation.item.done", "previous_item_id": previous, "item": wire})
            case ev.ItemDeleted(item_id):
                put({"type": "conversation.item.deleted", "item_id": item_id})
            case ev.OutputCleared(response_id, _item_id):
                put({"type": "output_audio_buffer.cleared", "response_id": response_id})
            case ev.ItemTruncated(item_id, audio_end_ms):
                put(
                    {
                        "type": "conversation.item.truncated",
                        "item_id": item_id,
                        "content_index": 0,
                        "audio_end_ms": audio_end_ms,
                    }
                )
            case ev.Latency():
                put(
                    {
                        "type": "hark.latency",
                        "response_id": event.response_id,
                        "end_of_turn_ms": event.end_of_turn_ms,
                        "stt_ms": event.stt_ms,
                        "llm_ttft_ms": event.llm_ttft_ms,
                        "tts_ttfb_ms": event.tts_ttfb_ms,
                        "voice_to_voice_ms": event.voice_to_voice_ms,
                    }
                )
            case ev.OutputPaused(response_id, item_id, audio_ms) | ev.OutputResumed(
                response_id, item_id, audio_ms
            ):
                paused = isinstance(event, ev.OutputPaused)
                name = "hark.output_paused" if paused else "hark.output_resumed"
                put({"type": name, "response_id": response_id, "item_id": item_id, "audio_ms": audio_ms})
            case ev.SpeechIgnored(item_id, reason):
                put({"type": "hark.speech_ignored", "item_id": item_id, "reason": reason})
            case ev.ConversationError(code, message, kind):
                out.extend(self.error(rp.ProtocolError(message, code=code, type=kind)))
        return out

    def _message_done(
        self, put: Put, response_id: str, item: Item, output: str, in_conversation: bool, previous: str | None
    ) -> None:
        text = item.text or ""
        part = _part(response_id, item.id)
        if output == "audio":
            put({"type": "response.output_audio.done", **part})
            put({"type": "response.output_audio_transcript.done", **part, "transcript": text})
            put({"type": "response.content_part.done", **part, "part": {"type": "audio", "transcript": text}})
        else:
            put({"type": "response.output_text.done", **part, "text": text})
            put({"type": "response.content_part.done", **part, "part": {"type": "text", "text": text}})
        wire = wire_item(item)
        put(
            {"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": wire}
        )
        if in_conversation:
            put({"type": "conversation.item.done", "previous_item_id": previous, "item": wire})

    def _function_call(
        self, put: Put, response_id: str, item: Item, index: int, previous: str | None, in_conversation: bool
    ) -> None:
        opened = wire_item(item.with_(status="in_progress", arguments=""))
        done = wire_item(item)
        where = {
            "response_id": response_id,
            "item_id": item.id,
            "output_index": index,
            "call_id": item.call_id,
        }
        put(
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": index,
                "item": opened,
            }
        )
        if in_conversation:
            put({"type": "conversation.item.added", "previous_item_id": previous, "item": opened})
        put({"type": "response.function_call_arguments.delta", **where, "delta": item.arguments or ""})
        put(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": item.name,
                "arguments": item.arguments or "",
            }
        )
        put(
            {
                "type": "response.output_item.done",
                "response_id": response_id,
                "output_index": index,
                "item": done,
            }
        )
        if in_conversation:
            put({"type": "conversation.item.done", "previous_item_id": previous, "item": done})

    def _done(self, event: ev.ResponseDone) -> dict[str, Any]:
        details: dict[str, Any] | None = None
        if event.status == "cancelled":
            details = {"type": "cancelled", "reason": event.reason or "client_cancelled"}
        elif event.status == "failed":
            error = {"type": "server_error", "code": "engine_error", "message": event.reason}
            details = {"type": "failed", "error": error}
        output = [wire_item(i) for i in event.items]
        response = self._response(
            event.response_id, event.status, output, event.output, event.metadata, event.in_conversation
        )
        response["status_details"] = details
        return response

    def _response(
        self,
        response_id: str,
        status: str,
        output: list[dict[str, Any]],
        modality: str,
        metadata: Mapping[str, str] | None,
        in_conversation: bool,
    ) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": None,
            "output": output,
            "conversation_id": self.conversation_id if in_conversation else None,
            "output_modalities": [modality],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": rp.SAMPLE_RATE}, "voice": VOICE}},
            "usage": None,
            "metadata": dict(metadata) if metadata is not None else None,
        }


def _part(response_id: str, item_id: str) -> dict[str, Any]:
    return {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}


def wire_item(item: Item) -> dict[str, Any]:
    """An item as the GA protocol spells it (``openai.types.realtime.ConversationItem``)."""
    base = {"id": item.id, "object": "realtime.item", "type": item.type, "status": item.status}
    if item.type == "function_call":
        return {**base, "call_id": item.call_id, "name": item.name, "arguments": item.arguments or ""}
    if item.type == "function_call_output":
        return {**base, "call_id": item.call_id, "output": item.output or ""}
    content: list[dict[str, Any]]
    if item.role == "assistant":
        if item.text is None:
            content = []
        elif item.audio:
            content = [{"type": "output_audio", "transcript": item.text}]
        else:
            content = [{"type": "output_text", "text": item.text}]
    elif item.audio:
        content = [{"type": "input_audio", "transcript": item.text}]
    else:
        content = [{"type": "input_text", "text": item.text or ""}]
    return {**base, "role": item.role, "content": content}


def session_object(view: SessionView) -> dict[str, Any]:
    pcm = {"type": "audio/pcm", "rate": rp.SAMPLE_RATE}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": view.id,
        "model": view.model,
        "output_modalities": [view.output],
        "instructions": view.instructions,
        "audio": {
            "input": {
                "format": pcm,
                "transcription": view.transcription,
                "noise_reduction": None,
                "turn_detection": view.turn_detection,
            },
            "output": {"format": pcm, "voice": VOICE, "speed": 1.0},
        },
        "tools": view.tools,
        "tool_choice": view.tool_choice,
        "max_output_tokens": view.max_output_tokens,
    }
