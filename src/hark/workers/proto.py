"""What the pool and a worker process say to each other over the worker's pipe.

Pickled dataclasses, strictly turn by turn:

* child → parent, once at start: :class:`Ready` or :class:`Failed` (the child then exits);
* parent → child: a :class:`Call` carrying one request (:class:`Transcribe`,
  :class:`Synthesize` or :class:`Embed`);
* child → parent: for :class:`Synthesize`, a :class:`Chunk` per piece of PCM16 as the engine
  yields it; then exactly one :class:`Done` or :class:`Failure` for the call.

The parent ends a child by closing its end of the pipe (the child sees EOF and exits), or by
SIGKILL when it hangs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hark.engines.base import Float32Array, SpeakerCapabilities, STTCapabilities, TTSCapabilities


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What the parent needs to know about an engine without loading it."""

    stage: str
    name: str
    sample_rate: int
    capabilities: STTCapabilities | TTSCapabilities | SpeakerCapabilities


# -- start-up (child → parent) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """Every engine built and warmed."""

    engines: list[EngineInfo]
    warm_s: float


@dataclass(frozen=True, slots=True)
class Failed:
    """An engine could not be built or warmed; the child exits."""

    reason: str


# -- requests (parent → child) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transcribe:
    """STT: the result is a :class:`~hark.engines.base.Transcript`."""

    method: ClassVar[str] = "transcribe"
    audio: Float32Array
    language: str | None
    deterministic: bool = False


@dataclass(frozen=True, slots=True)
class Synthesize:
    """TTS: the audio comes as :class:`Chunk` messages; the result is None."""

    method: ClassVar[str] = "synthesize"
    text: str


@dataclass(frozen=True, slots=True)
class Embed:
    """Speaker embeddings: the result is ``[float32 vector | None, ...]``, one per clip."""

    method: ClassVar[str] = "embed"
    clips: list[Float32Array]


Request = Transcribe | Synthesize | Embed


@dataclass(frozen=True, slots=True)
class Call:
    id: int
    engine: int
    """Index into the pool's ``stage_providers``."""
    request: Request


# -- replies (child → parent) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a :class:`Synthesize` call's audio; more follow, then its reply."""

    id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Done:
    id: int
    result: Any


@dataclass(frozen=True, slots=True)
class Failure:
    id: int
    message: str
    retryable: bool


Reply = Chunk | Done | Failure
FromChild = Ready | Failed | Reply
