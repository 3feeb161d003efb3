"""What a conversation tells its transport. Transports map these onto their own wire format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from hark.pipeline.conversation_state import ConversationState
from hark.pipeline.items import Item

Output = Literal["audio", "text"]
"""How a reply is given: spoken (audio with its transcript) or written only (no TTS)."""


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
    """The id its message item will have, once it has words (``MessageStarted``)."""
    mode: Literal["llm", "echo"]
    output: Output = "audio"
    metadata: Mapping[str, str] | None = None
    in_conversation: bool = True
    """False for an out-of-band response: its items are not added to the conversation."""


@dataclass(frozen=True, slots=True)
class MessageStarted:
    """The reply's message item, opened with its first words."""

    response_id: str
    item_id: str
    previous_item_id: str | None
    output: Output = "audio"
    in_conversation: bool = True


@dataclass(frozen=True, slots=True)
class ResponseText:
    response_id: str
    item_id: str
    delta: str
    output: Output = "audio"


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
    output: Output = "audio"
    metadata: Mapping[str, str] | None = None
    items: tuple[Item, ...] = ()
    """The response's output items, in order (its message, if it said anything, then calls)."""
    in_conversation: bool = True
    saturated: bool = False
    """It failed because the engines were at capacity (load, not a fault)."""


@dataclass(frozen=True, slots=True)
class MessageDone:
    """The reply's message item is complete (sent before its response's ``ResponseDone``)."""

    response_id: str
    item: Item
    output: Output = "audio"
    in_conversation: bool = True
    previous_item_id: str | None = None


@dataclass(frozen=True, slots=True)
class FunctionCalled:
    """The LLM called a client-defined function: an output item of the response. The client
    runs it and answers with a ``function_call_output`` item; hark does not go on by itself."""

    response_id: str
    item: Item
    output_index: int
    previous_item_id: str | None
    in_conversation: bool = True


@dataclass(frozen=True, slots=True)
class ItemAdded:
    """An item the client created (conversation.item.create), now in the conversation."""

    item: Item
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class ItemDeleted:
    item_id: str


@dataclass(frozen=True, slots=True)
class OutputCleared:
    """Reply audio already sent must be dropped by the client (barge-in)."""

    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class OutputPaused:
    """Speech started over the reply: no more of its audio is sent until it resumes or is
    cancelled. ``audio_ms``: the position in the reply's audio it will resume from."""

    response_id: str
    item_id: str
    audio_ms: int


@dataclass(frozen=True, slots=True)
class OutputResumed:
    """The speech over the reply was not an interruption: its audio goes on from ``audio_ms``."""

    response_id: str
    item_id: str
    audio_ms: int


@dataclass(frozen=True, slots=True)
class SpeechIgnored:
    """Speech over a reply that was not a turn (a backchannel, a sound with no words, hark's own
    words): it is not committed and nothing answers it."""

    item_id: str
    reason: str
    """"backchannel", "noise" (no words: a cough, a laugh) or "self_speech"."""


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
    | MessageStarted
    | ResponseText
    | ResponseAudio
    | MessageDone
    | FunctionCalled
    | ResponseDone
    | ItemAdded
    | ItemDeleted
    | OutputCleared
    | OutputPaused
    | OutputResumed
    | SpeechIgnored
    | ItemTruncated
    | Latency
    | ConversationError
)
