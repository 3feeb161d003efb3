"""The Realtime session's settings: wire fields (session.update, response.create, created items)
turned into what the conversation takes, and the session as session.created/updated report it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from hark.engines.base import DETECT_LANGUAGE, ToolSpec
from hark.pipeline.conversation import Conversation, ConversationConfig, new_id
from hark.pipeline.errors import InvalidValue, Unsupported, UnsupportedAudioFormat
from hark.pipeline.items import Item
from hark.pipeline.language import checked_language
from hark.pipeline.options import ResponseOptions
from hark.pipeline.turns import Eagerness, TurnConfig
from hark.transports import realtime_protocol as rp
from hark.transports.realtime_codec import SessionView

TRANSCRIPTION_MODEL = "hark"
"""What ``transcription.model`` reports when the client named none: hark's own STT chain."""


class SessionSettings:
    def __init__(self, config: ConversationConfig) -> None:
        self._config = config
        self.turn = config.turn
        self.prefix_ms = 300
        self.tools: list[dict[str, Any]] = []
        self.tool_choice: str | dict[str, Any] = "auto"
        self.max_output_tokens: int | Literal["inf"] = "inf"
        self.output: Literal["audio", "text"] = "audio"
        self.transcription_model: str | None = None
        """The transcription model the client named (reported back; hark uses its own STT)."""

    def apply(self, session: rp.SessionConfig, conversation: Conversation) -> None:
        """session.update; raises InvalidValue/Unsupported before changing anything."""
        audio = session.audio
        if audio is not None:
            for direction, spec in (("input", audio.input), ("output", audio.output)):
                fmt = spec.format if spec is not None else None
                rate = fmt.rate if fmt is not None and fmt.rate is not None else rp.SAMPLE_RATE
                if fmt is not None and (fmt.type != "audio/pcm" or rate != rp.SAMPLE_RATE):
                    raise _unsupported_format(direction, fmt)
        transcription = _transcription(audio)
        options = _options(
            session.tools, session.tool_choice, session.output_modalities, session.max_output_tokens
        )
        if session.instructions is not None:
            options = replace(options, instructions=session.instructions)
        conversation.configure(options)
        if session.tools is not None:
            self.tools = [t.model_dump() for t in session.tools]
        if session.tool_choice is not None:
            choice = session.tool_choice
            self.tool_choice = choice if isinstance(choice, str) else choice.model_dump()
        if session.max_output_tokens is not None:
            self.max_output_tokens = session.max_output_tokens
        if options.output is not None:
            self.output = options.output
        if transcription is not None:
            self.transcription_model, language = transcription
            conversation.configure_language(language)
        if audio is not None and audio.input is not None and "turn_detection" in audio.input.model_fields_set:
            self.apply_turn_detection(audio.input.turn_detection, conversation)

    def apply_turn_detection(self, detection: rp.TurnDetection | None, conversation: Conversation) -> None:
        base = self._config.turn
        if detection is None:
            self.turn, self.prefix_ms = base, 300
            conversation.configure_turns(None)
            return
        self.turn = TurnConfig(
            chunk_ms=base.chunk_ms,
            threshold=detection.threshold if detection.threshold is not None else base.threshold,
            neg_threshold=base.neg_threshold if detection.threshold is None else None,
            start_ms=base.start_ms,
            end_silence_ms=(
                float(detection.silence_duration_ms)
                if detection.silence_duration_ms is not None
                else base.end_silence_ms
            ),
            max_turn_ms=base.max_turn_ms,
            eagerness=Eagerness(detection.eagerness or "auto") if detection.type == "semantic_vad" else None,
            coded_tail_ms=base.coded_tail_ms,
            words_min_logprob=base.words_min_logprob,
            words_doubt_ms=base.words_doubt_ms,
        )
        self.prefix_ms = detection.prefix_padding_ms if detection.prefix_padding_ms is not None else 300
        conversation.configure_turns(
            self.turn,
            prefix_ms=self.prefix_ms,
            create_response=detection.create_response,
            interrupt_response=detection.interrupt_response,
        )

    def turn_detection_wire(self, conversation: Conversation) -> dict[str, Any] | None:
        if not conversation.turn_detection:
            return None
        if self.turn.eagerness is not None:
            return {
                "type": "semantic_vad",
                "eagerness": self.turn.eagerness.value,
                "create_response": conversation.auto_respond,
                "interrupt_response": conversation.interrupt,
            }
        return {
            "type": "server_vad",
            "threshold": self.turn.threshold,
            "prefix_padding_ms": self.prefix_ms,
            "silence_duration_ms": int(self.turn.end_silence_ms),
            "create_response": conversation.auto_respond,
            "interrupt_response": conversation.interrupt,
            "idle_timeout_ms": None,
        }

    def view(self, session_id: str, model: str, conversation: Conversation) -> SessionView:
        return SessionView(
            id=session_id,
            model=model,
            instructions=conversation.instructions or self._config.system_prompt,
            output=self.output,
            turn_detection=self.turn_detection_wire(conversation),
            tools=self.tools,
            tool_choice=self.tool_choice,
            max_output_tokens=self.max_output_tokens,
            # A model is always named: clients such as Pipecat's realtime service refuse a null one.
            transcription={
                "model": self.transcription_model or TRANSCRIPTION_MODEL,
                "language": conversation.language.reported,
            },
        )


def _transcription(audio: rp.SessionAudio | None) -> tuple[str | None, str | None] | None:
    """``audio.input.transcription`` when the update sets it: (the model named, the language for
    ``configure_language``). A language left out is the server's; null detects it."""
    spec = audio.input if audio is not None else None
    if spec is None or "transcription" not in spec.model_fields_set:
        return None
    wire = spec.transcription
    if wire is None or "language" not in wire.model_fields_set:
        return (wire.model if wire is not None else None), None
    if wire.language is None:
        return wire.model, DETECT_LANGUAGE
    return wire.model, checked_language(wire.language, param="session.audio.input.transcription.language")


def _unsupported_format(direction: str, fmt: rp.AudioFormat) -> UnsupportedAudioFormat:
    return UnsupportedAudioFormat(
        f"unsupported {direction} format {fmt.type} at {fmt.rate} Hz; hark speaks audio/pcm at 24000 Hz",
        param=f"session.audio.{direction}.format",
    )


def _options(
    tools: list[rp.FunctionTool] | None,
    choice: rp.ToolChoiceWire | None,
    modalities: list[Literal["audio", "text"]] | None,
    max_tokens: int | Literal["inf"] | None,
) -> ResponseOptions:
    if modalities is not None and not modalities:
        raise InvalidValue("output_modalities must name audio or text", param="output_modalities")
    return ResponseOptions(
        tools=tuple(ToolSpec(t.name, t.description, t.parameters) for t in tools)
        if tools is not None
        else None,
        tool_choice=None if choice is None else choice if isinstance(choice, str) else choice.name,
        output=None if modalities is None else "audio" if "audio" in modalities else "text",
        max_output_tokens=max_tokens,
    )


def response_options(params: rp.ResponseParams | None) -> ResponseOptions | None:
    """response.create's ``response``: this response's overrides."""
    if params is None:
        return None
    if params.conversation not in (None, "auto", "none"):
        raise InvalidValue(
            "response.conversation must be auto or none (hark keeps one conversation per session)",
            param="response.conversation",
        )
    base = _options(params.tools, params.tool_choice, params.output_modalities, params.max_output_tokens)
    entries: tuple[Item | str, ...] | None = None
    if params.input is not None:
        entries = tuple(e.id if isinstance(e, rp.ItemReference) else item_of(e) for e in params.input)
    return replace(
        base,
        instructions=params.instructions,
        metadata=params.metadata,
        in_conversation=params.conversation != "none",
        input=entries,
    )


def item_of(wire: rp.MessageItem | rp.FunctionCallItem | rp.FunctionCallOutputItem) -> Item:
    item_id = wire.id or new_id("item")
    if isinstance(wire, rp.FunctionCallItem):
        return Item(item_id, "function_call", call_id=wire.call_id, name=wire.name, arguments=wire.arguments)
    if isinstance(wire, rp.FunctionCallOutputItem):
        return Item(item_id, "function_call_output", call_id=wire.call_id, output=wire.output)
    words = []
    for part in wire.content:
        if part.words is None:
            raise Unsupported(
                "an audio content part needs its transcript: hark does not transcribe created items",
                param="item.content",
            )
        words.append(part.words)
    spoken = any(part.type in ("input_audio", "audio", "output_audio") for part in wire.content)
    return Item(item_id, "message", role=wire.role, text=" ".join(words), audio=spoken)
