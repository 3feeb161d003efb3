"""Fake engines with knobs (failures, stalls, delays) instead of patches.

In-process fakes first; then the worker pool's doubles, which a spawned worker builds through
:func:`fake_factory` (a spawned child gets the parent's ``sys.path``, so it imports this module
as the tests do). For those, the first audio sample selects a behaviour.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hark.config import ProviderConfig, Settings
from hark.engines.base import (
    ChatMessage,
    Float32Array,
    LLMChunk,
    LLMOptions,
    STTCapabilities,
    Transcript,
    TTSCapabilities,
    TurnModel,
    VADStream,
)
from hark.errors import EngineError
from hark.pipeline.conversation import Conversation, ConversationConfig
from hark.pipeline.events import Event
from hark.pipeline.tools import Toolbox
from hark.pipeline.turns import TurnConfig


@dataclass
class FakeLLM:
    name: str = "fake-llm"
    chunks: Sequence[LLMChunk] = ("Hello", " there", ".")
    scripts: list[Sequence[LLMChunk]] = field(default_factory=list)
    """Chunks for the next calls, one entry per call, used before ``chunks``."""
    first_delay: float = 0.0
    chunk_delay: float = 0.0
    fail_before: EngineError | None = None
    """Raised before the first chunk."""
    fail_after: int | None = None
    """Raise a retryable error after this many chunks."""
    stall: bool = False
    healthy: bool = True
    calls: list[list[ChatMessage]] = field(default_factory=list)
    options: list[LLMOptions | None] = field(default_factory=list)
    closed: bool = False

    async def stream(
        self, messages: Sequence[ChatMessage], options: LLMOptions | None = None
    ) -> AsyncIterator[LLMChunk]:
        self.calls.append(list(messages))
        self.options.append(options)
        if self.stall:
            await asyncio.Event().wait()
        await asyncio.sleep(self.first_delay)
        if self.fail_before is not None:
            raise self.fail_before
        chunks = self.scripts.pop(0) if self.scripts else self.chunks
        for index, chunk in enumerate(chunks):
            if self.fail_after is not None and index == self.fail_after:
                raise EngineError("fake failure mid-stream", retryable=True, engine=self.name)
            if index:
                await asyncio.sleep(self.chunk_delay)
            yield chunk

    async def check(self) -> None:
        if not self.healthy:
            raise EngineError("fake is unhealthy", retryable=True, engine=self.name)

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class FakeTTS:
    name: str = "fake-tts"
    sample_rate: int = 24_000
    capabilities: TTSCapabilities = field(default_factory=lambda: TTSCapabilities(streaming=True))
    chunk_ms: int = 100
    ms_per_char: int = 50
    first_delay: float = 0.0
    piece_delay: float = 0.0
    """Seconds between pieces: a TTS that needs time for each."""
    fail_before: EngineError | None = None
    fail_after: int | None = None
    fail_times: int | None = None
    """How many calls ``fail_after`` applies to; None for every call."""
    stall: bool = False
    healthy: bool = True
    texts: list[str] = field(default_factory=list)
    yielded_at: list[float] = field(default_factory=list)
    """time.monotonic() of every piece handed out."""
    stop_passes: int = 0
    """Loop passes a cancelled synthesis takes to stop (an engine that must stop its worker)."""

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        try:
            async for piece in self._synthesize(text):
                yield piece
        except asyncio.CancelledError:
            for _ in range(self.stop_passes):
                await asyncio.sleep(0)
            raise

    async def _synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.texts.append(text)
        if self.stall:
            await asyncio.Event().wait()
        await asyncio.sleep(self.first_delay)
        if self.fail_before is not None:
            raise self.fail_before
        total = self.sample_rate * self.ms_per_char * len(text) // 1000
        step = self.sample_rate * self.chunk_ms // 1000
        fail_after = self.fail_after
        if self.fail_times is not None:
            if self.fail_times <= 0:
                fail_after = None
            self.fail_times -= 1
        for index, start in enumerate(range(0, total, step)):
            if fail_after is not None and index == fail_after:
                raise EngineError("fake failure mid-stream", retryable=True, engine=self.name)
            n = min(step, total - start)
            if index and self.piece_delay:
                await asyncio.sleep(self.piece_delay)
            self.yielded_at.append(time.monotonic())
            yield (np.full(n, 1000, dtype="<i2")).tobytes()

    async def check(self) -> None:
        if not self.healthy:
            raise EngineError("fake is unhealthy", retryable=True, engine=self.name)

    async def aclose(self) -> None:
        return None


@dataclass
class FakeSTT:
    name: str = "fake-stt"
    sample_rate: int = 16_000
    capabilities: STTCapabilities = field(default_factory=STTCapabilities)
    text: str = "hello world"
    logprob: float | None = None
    """How sure the fake recogniser says it is of ``text`` (``Transcript.logprob``)."""
    delay: float = 0.0
    fail: EngineError | None = None
    stall: bool = False
    healthy: bool = True
    calls: int = 0
    durations: list[float] = field(default_factory=list)
    """Seconds of audio in each call."""
    languages: list[str | None] = field(default_factory=list)
    """The language each call asked for."""
    deterministic: list[bool] = field(default_factory=list)
    """Whether each call asked for a deterministic decode."""

    async def transcribe(
        self, audio: Float32Array, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        self.calls += 1
        self.durations.append(len(audio) / self.sample_rate)
        self.languages.append(language)
        self.deterministic.append(deterministic)
        if self.stall:
            await asyncio.Event().wait()
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        duration_s = len(audio) / self.sample_rate
        return Transcript(text=self.text, language=language, duration_s=duration_s, logprob=self.logprob)

    async def check(self) -> None:
        if not self.healthy:
            raise EngineError("fake is unhealthy", retryable=True, engine=self.name)

    async def aclose(self) -> None:
        return None


@dataclass
class LoudnessVAD:
    """Speech is whatever is loud: deterministic turns without a model."""

    sample_rate: int = 16_000
    chunk_samples: int = 512
    calls: int = 0

    def new_stream(self) -> VADStream:
        return VADStream(state=np.zeros(1, dtype=np.float32), context=np.zeros(1, dtype=np.float32))

    async def probabilities(self, stream: VADStream, chunks: Sequence[Float32Array]) -> list[float]:
        self.calls += 1
        return [1.0 if float(np.abs(c).mean()) > 0.05 else 0.0 for c in chunks]

    async def aclose(self) -> None:
        return None


def tone(ms: int, rate: int = 24_000) -> bytes:
    """A loud 220 Hz tone, PCM16: speech to ``LoudnessVAD``."""
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * 220 * t) * 12000).astype("<i2").tobytes()


def quiet(ms: int, rate: int = 24_000) -> bytes:
    return bytes(rate * ms // 1000 * 2)


def fake_conversation(
    *,
    stt: FakeSTT,
    tts: FakeTTS,
    llm: FakeLLM | None,
    emit: Callable[[Event], None],
    tools: Toolbox | None = None,
    rate: int = 24_000,
    turn_model: TurnModel | None = None,
    **config: Any,
) -> Conversation:
    """A conversation over the fakes and ``LoudnessVAD``, with quick test settings (a 200 ms
    end-of-turn silence, 50 ms reply chunks); ``rate``: its audio in and out; ``config``
    overrides ConversationConfig fields."""
    settings: dict[str, Any] = {
        "system_prompt": "Be brief.",
        "history_turns": 5,
        "turn": TurnConfig(start_ms=64, end_silence_ms=200),
        "prefix_ms": 100,
        "max_turn_s": 10,
        "partial_interval_ms": 0,
        "output_chunk_ms": 50,
        "output_lead_ms": 200,
    }
    return Conversation(
        vad=LoudnessVAD(),
        stt=stt,
        tts=tts,
        llm=llm,
        config=ConversationConfig(**{**settings, **config}),
        emit=emit,
        tools=tools,
        input_rate=rate,
        output_rate=rate,
        turn_model=turn_model,
    )


# -- the worker pool's doubles ----------------------------------------------------------

SLEEP = -9.0
"""First sample: answer after ``audio[1]`` seconds."""
CRASH = -7.0
"""First sample: the process exits at once with code 3, as a native crash would."""
HANG = -8.0
"""First sample: block forever inside the call, as stuck native code would."""
FAIL = -6.0
"""First sample: raise a non-retryable EngineError (the worker survives)."""


def fake_audio(samples: int, *, sleep_s: float = 0.0, magic: float | None = None) -> Float32Array:
    """``samples`` long; the transcript of :class:`SleepySTT` is its length."""
    audio = np.zeros(max(samples, 2), dtype=np.float32)
    if magic is not None:
        audio[0] = magic
    elif sleep_s:
        audio[0], audio[1] = SLEEP, sleep_s
    return audio


class SleepySTT:
    """Transcribes audio to its length in samples; ``language`` carries the worker's pid."""

    name = "sleepy"
    sample_rate = 16_000
    capabilities = STTCapabilities()

    def __init__(self, log: str | None = None) -> None:
        self._log = Path(log) if log else None

    async def transcribe(
        self, audio: Float32Array, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        if self._log is not None:  # so a test can tell which requests reached a worker
            with self._log.open("a", encoding="utf-8") as file:
                file.write(f"{len(audio)}\n")
        first = float(audio[0]) if audio.size else 0.0
        if first == CRASH:
            os._exit(3)
        if first == HANG:
            while True:  # blocking on purpose: stuck native code does not yield either
                time.sleep(3600)  # noqa: ASYNC251
        if first == FAIL:
            raise EngineError("fake refusal", retryable=False, engine=self.name)
        if first == SLEEP:
            await asyncio.sleep(float(audio[1]))
        return Transcript(text=str(len(audio)), language=str(os.getpid()), duration_s=len(audio) / 16_000)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class EchoTTS:
    """'Synthesises' text to its UTF-16 bytes, so a test can decode what it got back."""

    name = "echo"
    sample_rate = 22_050
    capabilities = TTSCapabilities()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if text == "crash":
            os._exit(3)
        yield text.encode("utf-16-le")

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def fake_factory(stage: str, provider: ProviderConfig, settings: Settings) -> Any:
    """The pool's ``factory`` for tests. ``provider.options``: ``fail_start`` (raise while
    building), ``build_s`` (take that long to build, like a big model), ``log`` (a file
    SleepySTT appends each request's length to)."""
    if provider.options.get("fail_start"):
        raise EngineError("the fake engine refuses to start", engine=provider.kind)
    time.sleep(float(provider.options.get("build_s", 0.0)))
    if stage == "stt":
        return SleepySTT(provider.options.get("log"))
    return EchoTTS()
