"""The OpenAI Realtime (GA) wire format: client events parsed into models, server events built
from the fields. Shapes follow the official SDK's ``openai/types/realtime``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

SAMPLE_RATE = 24_000
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
    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    """semantic_vad only: how soon the turn model may end a turn (docs/turn-taking.md)."""
    threshold: float | None = Field(None, gt=0.0, lt=1.0)
    prefix_padding_ms: int | None = Field(None, ge=0, le=5000)
    silence_duration_ms: int | None = Field(None, ge=64, le=10_000)
    create_response: bool = True
    interrupt_response: bool = True


class AudioTranscription(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = Field(None, max_length=128)
    """Reported back as set; hark transcribes with its own STT chain whatever it names."""
    language: str | None = Field(None, max_length=64)
    """ISO-639-1; null: detect the language; absent: the server's ``stt.language``."""


class AudioInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: AudioFormat | None = None
    transcription: AudioTranscription | None = None
    turn_detection: TurnDetection | None = Field(default_factory=TurnDetection)


class AudioOutput(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: AudioFormat | None = None
    voice: str | None = None


class SessionAudio(BaseModel):
    model_config = ConfigDict(extra="allow")
    input: AudioInput | None = None
    output: AudioOutput | None = None


class FunctionTool(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"] = "function"
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = Field("", max_length=10_000)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolChoiceFunction(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64)


ToolChoiceWire = Literal["auto", "none", "required"] | ToolChoiceFunction
MaxTokens = Annotated[int, Field(ge=1, le=100_000)] | Literal["inf"]
Modalities = list[Literal["audio", "text"]]


class SessionConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["realtime"] = "realtime"
    instructions: str | None = Field(None, max_length=100_000)
    output_modalities: Modalities | None = None
    audio: SessionAudio | None = None
    tools: list[FunctionTool] | None = Field(None, max_length=128)
    tool_choice: ToolChoiceWire | None = None
    max_output_tokens: MaxTokens | None = None


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
    tools: list[FunctionTool] | None = Field(None, max_length=128)
    tool_choice: ToolChoiceWire | None = None
    output_modalities: Modalities | None = None
    max_output_tokens: MaxTokens | None = None
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(None, max_length=16)
    conversation: str | None = Field(None, max_length=256)
    """``auto`` (the default) or ``none`` (out of band: the conversation is left as it is)."""
    input: list[InputEntry] | None = Field(None, max_length=256)


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
    type: Literal["input_text", "text", "output_text", "input_audio", "audio", "output_audio"]
    text: str | None = Field(None, max_length=100_000)
    transcript: str | None = Field(None, max_length=100_000)
    audio: str | None = Field(None, max_length=MAX_EVENT_CHARS)

    @property
    def words(self) -> str | None:
        """The part as text: its text, or an audio part's transcript."""
        return self.text if self.text is not None else self.transcript


class MessageItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = Field(None, max_length=256)
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system"]
    content: list[ContentPart] = Field(min_length=1, max_length=64)


class FunctionCallItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = Field(None, max_length=256)
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=64)
    arguments: str = Field("", max_length=100_000)


class FunctionCallOutputItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = Field(None, max_length=256)
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=256)
    output: str = Field(max_length=100_000)


class ItemReference(BaseModel):
    """In ``response.input``: an item of the conversation, by id."""

    model_config = ConfigDict(extra="allow")
    type: Literal["item_reference"]
    id: str = Field(max_length=256)


def _item_kind(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "message")
    return kind if kind in _ITEM_KINDS else "message"


_ITEM_KINDS = ("message", "function_call", "function_call_output", "item_reference")
ClientItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_kind),
]
InputEntry = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ItemReference, Tag("item_reference")],
    Discriminator(_item_kind),
]


class ItemCreate(_Event):
    type: Literal["conversation.item.create"]
    item: ClientItem
    previous_item_id: str | None = Field(None, max_length=256)


class ItemRetrieve(_Event):
    type: Literal["conversation.item.retrieve"]
    item_id: str = Field(max_length=256)


class ItemDelete(_Event):
    type: Literal["conversation.item.delete"]
    item_id: str = Field(max_length=256)


class Resume(_Event):
    """hark's addition: continue a session that was disconnected (first event only)."""

    type: Literal["hark.resume"]
    token: str = Field(min_length=1, max_length=512)


ResponseParams.model_rebuild()
ResponseCreate.model_rebuild()

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
    | ItemRetrieve
    | ItemDelete
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
        ItemRetrieve,
        ItemDelete,
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


def parse_client_event(
    text: str, *, dialect: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> ClientEvent:
    """``dialect``: rewrites a decoded event into the GA shape before it is validated."""
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
    if dialect is not None:
        data = dialect(data)
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # The item unions' tags are not fields: item.content, not item.message.content.
        loc = [p for p in first["loc"][1:] if p not in _ITEM_KINDS]
        param = ".".join(str(p) for p in loc) or None
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
