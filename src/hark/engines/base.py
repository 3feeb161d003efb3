"""The narrow interfaces every engine implements.

Engines know nothing of sessions, transports or wire encodings: audio goes in and out as numpy
arrays or PCM16 bytes at the engine's own sample rate, text as strings and async iterators.
Blocking inference runs on the engine's own executor, never on the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class STTCapabilities:
    streaming: bool = False
    interim_results: bool = False


@dataclass(frozen=True, slots=True)
class TTSCapabilities:
    streaming: bool = False


@dataclass(frozen=True, slots=True)
class SpeakerCapabilities:
    dimensions: int = 192
    """Length of each (unit) speaker embedding."""


DETECT_LANGUAGE = "auto"
"""``STT.transcribe(language=DETECT_LANGUAGE)``: detect the language of this audio, whatever the
engine's configured language (None asks for the configured one)."""


def asked_language(language: str | None, configured: str | None) -> str | None:
    """The language an engine decodes in for ``transcribe(language=…)``; None: detect it."""
    if language == DETECT_LANGUAGE:
        return None
    return language or configured


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str | None = None
    duration_s: float = 0.0
    logprob: float | None = None
    """How sure the recogniser is of ``text``: its mean log-probability per token (Whisper's
    ``avg_logprob``, over all segments); None where the engine does not say."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the LLM may call (OpenAI-style: a JSON schema for the arguments)."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete call the LLM asked for; ``arguments`` is the JSON text it produced."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    """On an assistant message: the calls it made."""
    tool_call_id: str | None = None
    """On a tool message: which call this is the result of."""


ToolChoice = str
"""``auto`` (the model decides), ``none`` (no call), ``required`` (some call), or the name of the
one tool that must be called."""

TOOL_CHOICE_MODES = ("auto", "none", "required")


@dataclass(frozen=True, slots=True)
class LLMOptions:
    """Per-request options; engines map them onto their own API."""

    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    """Only meaningful with ``tools``; see ``ToolChoice``."""
    json_schema: dict[str, Any] | None = None
    """Ask for JSON matching this schema (engines use native structured output where they have it)."""
    temperature: float | None = None
    max_tokens: int | None = None


LLMChunk = str | ToolCall
"""What an LLM stream yields: text deltas, and tool calls once each call is complete."""


@dataclass(slots=True)
class VADStream:
    """Per-stream recurrent state of a VAD model; owned by whoever feeds the audio."""

    state: Float32Array
    context: Float32Array
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class VAD(Protocol):
    sample_rate: int
    chunk_samples: int

    def new_stream(self) -> VADStream: ...

    async def probabilities(self, stream: VADStream, chunks: Sequence[Float32Array]) -> list[float]:
        """Speech probability of each chunk (``chunk_samples`` long), in order."""
        ...

    async def aclose(self) -> None: ...


class TurnModel(Protocol):
    """Judges from the audio of a turn so far (ending now) whether the speaker is done."""

    name: str
    sample_rate: int

    async def end_probability(self, audio: Float32Array) -> float: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class STT(Protocol):
    name: str
    sample_rate: int
    capabilities: STTCapabilities

    async def transcribe(
        self, audio: Float32Array, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        """Transcribe mono float32 audio at ``sample_rate``: in ``language`` (ISO-639-1), in the
        engine's configured language (None), or in the one it detects (``DETECT_LANGUAGE``).

        ``deterministic``: a transcript of speech still in flight (a partial, a barge-in check):
        the same audio must give the same text, so an engine that samples to retry a doubtful
        decode (faster-whisper's temperature fallback) decodes greedily once instead. Engines
        with nothing random to turn off ignore it."""
        ...

    async def check(self) -> None:
        """Raise EngineUnavailable when the engine cannot serve; cheap (no paid request)."""
        ...

    async def aclose(self) -> None: ...


class EngineFactory(Protocol):
    """What the registry builds engines with: every engine class has this classmethod."""

    def from_config(self, provider: ProviderConfig, settings: Settings) -> Any: ...


@runtime_checkable
class LLM(Protocol):
    name: str

    def stream(
        self, messages: Sequence[ChatMessage], options: LLMOptions | None = None
    ) -> AsyncIterator[LLMChunk]:
        """Stream the reply: text deltas, and each tool call once complete.
        Raises EngineError (retryable or not); EngineUnavailable when it cannot be reached."""
        ...

    async def check(self) -> None:
        """Raise EngineUnavailable when the model cannot be reached."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TTS(Protocol):
    name: str
    sample_rate: int
    capabilities: TTSCapabilities

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Stream mono PCM16 little-endian audio at ``sample_rate`` for ``text``."""
        ...

    async def check(self) -> None:
        """Raise EngineUnavailable when the engine cannot serve; cheap (no paid request)."""
        ...

    async def aclose(self) -> None: ...
