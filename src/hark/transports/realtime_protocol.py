"""The OpenAI Realtime (GA) wire format: client events parsed into models, server events built
from the fields. Shapes follow the official SDK's ``openai/types/realtime``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_EVENT_CHARS = 20 * 1024 * 1024
MAX_DEPTH = 32


class ProtocolError(Exception):
    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid_value",
        type: str = "invalid_request_error",
        event_id: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.type = type
        self.event_id = event_id
        self.param = param


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    event_id: str | None = Field(None, max_length=512)


class AudioFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["audio/pcm", "audio/pcmu", "audio/pcma"] = "audio/pcm"
    rate: int | None = None


class TurnDetection(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float | None = Field(None, gt=0.0, lt=1.0)
    prefix_padding_ms: int | None = Field(None, ge=0, le=5000)
    silence_duration_ms: int | None = Field(None, ge=64, le=10_000)
    create_response: bool = True
    interrupt_response: bool = True


class AudioInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: AudioFormat | None = None
    turn_detection: TurnDetection | None = Field(default_factory=TurnDetection)


class AudioOutput(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: AudioFormat | None = None
    voice: str | None = None


class SessionAudio(BaseModel):
    model_config = ConfigDict(extra="allow")
    input: AudioInput | None = None
    output: AudioOutput | None = None


class SessionConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["realtime"] = "realtime"
    instructions: str | None = Field(None, max_length=100_000)
    output_modalities: list[Literal["audio", "text"]] | None = None
    audio: SessionAudio | None = None


class SessionUpdate(_Event):
    type: Literal["session.update"]
    session: SessionConfig


class InputAudioAppend(_Event):
    type: Literal["input_audio_buffer.append"]
    audio: str


class InputAudioCommit(_Event):
    type: Literal["input_audio_buffer.commit"]


class InputAudioClear(_Event):
    type: Literal["input_audio_buffer.clear"]


class ResponseParams(BaseModel):
    model_config = ConfigDict(extra="allow")
    instructions: str | None = Field(None, max_length=100_000)


class ResponseCreate(_Event):
    type: Literal["response.create"]
    response: ResponseParams | None = None


class ResponseCancel(_Event):
    type: Literal["response.cancel"]
    response_id: str | None = None


class OutputAudioClear(_Event):
    type: Literal["output_audio_buffer.clear"]


class ItemTruncate(_Event):
    type: Literal["conversation.item.truncate"]
    item_id: str = Field(max_length=256)
    content_index: int = Field(0, ge=0)
    audio_end_ms: int = Field(ge=0)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["input_text", "text", "output_text"]
    text: str = Field(max_length=100_000)


class MessageItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = Field(None, max_length=256)
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system"]
    content: list[ContentPart] = Field(min_length=1, max_length=64)


class ItemCreate(_Event):
    type: Literal["conversation.item.create"]
    item: MessageItem
    previous_item_id: str | None = None


class Resume(_Event):
    """hark's addition: continue a session that was disconnected (first event only)."""

    type: Literal["hark.resume"]
    token: str = Field(min_length=1, max_length=512)


ClientEvent = Annotated[
    SessionUpdate
    | InputAudioAppend
    | InputAudioCommit
    | InputAudioClear
    | ResponseCreate
    | ResponseCancel
    | OutputAudioClear
    | ItemTruncate
    | ItemCreate
    | Resume,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)
KNOWN_TYPES = frozenset(
    m.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in (
        SessionUpdate,
        InputAudioAppend,
        InputAudioCommit,
        InputAudioClear,
        ResponseCreate,
        ResponseCancel,
        OutputAudioClear,
        ItemTruncate,
        ItemCreate,
        Resume,
    )
)


def _depth(value: Any, limit: int) -> bool:
    """True when ``value`` nests deeper than ``limit`` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def parse_client_event(text: str) -> ClientEvent:
    if len(text) > MAX_EVENT_CHARS:
        raise ProtocolError(f"event larger than {MAX_EVENT_CHARS} characters", code="event_too_large")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"event is not valid JSON: {str(exc)[:120]}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ProtocolError("event must be a JSON object", code="invalid_json")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    if event_id is not None and len(event_id) > 512:
        event_id = event_id[:512]
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(
            "event has no string 'type'", code="missing_required_parameter", event_id=event_id, param="type"
        )
    if kind not in KNOWN_TYPES:
        raise ProtocolError(
            f"unsupported event type {kind[:80]!r}",
            code="unknown_event_type",
            event_id=event_id,
            param="type",
        )
    if _depth(data, MAX_DEPTH):
        raise ProtocolError(f"event nests deeper than {MAX_DEPTH} levels", event_id=event_id)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"][1:]) or None
        raise ProtocolError(
            f"invalid {kind}: {param or 'event'}: {first['msg']}", event_id=event_id, param=param
        ) from None


AUDIO_WIRES = ("json", "binary")
"""How reply audio travels, chosen with the ``audio`` query parameter when connecting:
``response.output_audio.delta`` events (base64 in JSON, the default) or binary frames of raw PCM."""


def audio_wire(value: str | None) -> str:
    if value is None or value == "":
        return "json"
    if value not in AUDIO_WIRES:
        raise ProtocolError(
            f"unknown audio wire {value[:40]!r}; use audio=binary or audio=json (the default is json)",
            param="audio",
        )
    return value


def binary_pcm(data: bytes, *, max_bytes: int) -> bytes:
    """A binary client frame: raw PCM16 little-endian mono, refused as an append would be."""
    if len(data) > max_bytes:
        raise ProtocolError(f"binary audio frame exceeds {max_bytes} bytes", param="audio")
    if len(data) % 2:
        raise ProtocolError(
            f"binary audio frame of {len(data)} bytes: PCM16 audio must have an even number of bytes",
            param="audio",
        )
    return data


def error_event(error: ProtocolError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": error.type,
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": error.event_id,
        },
    }
