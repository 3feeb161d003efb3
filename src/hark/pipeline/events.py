"""What a conversation tells its transport. Transports map these onto their own wire format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hark.pipeline.state import ConversationState


@dataclass(frozen=True, slots=True)
class StateChanged:
    state: ConversationState


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class InputCommitted:
    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class InputCleared:
    pass


@dataclass(frozen=True, slots=True)
class TranscriptPartial:
    item_id: str
    delta: str
    text: str


@dataclass(frozen=True, slots=True)
class TranscriptFinal:
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class TranscriptFailed:
    item_id: str
    message: str
    saturated: bool = False
    """The engines were at capacity (load, not a fault)."""


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    response_id: str
    item_id: str
    mode: Literal["llm", "echo"]


@dataclass(frozen=True, slots=True)
class ResponseText:
    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class ResponseAudio:
    response_id: str
    item_id: str
    pcm: bytes


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response_id: str
    item_id: str
    status: Literal["completed", "cancelled", "failed"]
    text: str
    """What the user heard (all of it when completed)."""
    audio_ms: int
    reason: str | None = None
    saturated: bool = False
    """It failed because the engines were at capacity (load, not a fault)."""


@dataclass(frozen=True, slots=True)
class OutputCleared:
    """Reply audio already sent must be dropped by the client (barge-in)."""

    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class ItemTruncated:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class Latency:
    response_id: str
    end_of_turn_ms: float | None
    stt_ms: float | None
    llm_ttft_ms: float | None
    tts_ttfb_ms: float | None
    voice_to_voice_ms: float | None


@dataclass(frozen=True, slots=True)
class ConversationError:
    code: str
    message: str
    type: str = "server_error"


Event = (
    StateChanged
    | SpeechStarted
    | SpeechStopped
    | InputCommitted
    | InputCleared
    | TranscriptPartial
    | TranscriptFinal
    | TranscriptFailed
    | ResponseStarted
    | ResponseText
    | ResponseAudio
    | ResponseDone
    | OutputCleared
    | ItemTruncated
    | Latency
    | ConversationError
)
