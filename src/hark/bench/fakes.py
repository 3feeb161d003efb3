"""Fixed-delay engines for benchmarks: kind ``scripted`` in the STT, LLM and TTS tables.

A plugin, not a production provider: a server has them only when ``server.plugins`` names this
module (:data:`PLUGIN_ENV`, which every bench server's environment carries).

They do no work, only wait, so whatever a turn takes beyond their script is the framework's.
Every delay is measured from the moment the engine is called, against absolute deadlines (no
drift from one token to the next), and every one can be changed through ``provider.options``::

    HARK_SERVER_PLUGINS='["hark.bench.fakes"]'
    HARK_STT_PROVIDERS='[{"kind": "scripted", "options": {"final_ms": 150}}]'
    HARK_LLM_PROVIDERS='[{"kind": "scripted", "options": {"first_token_ms": 200, "token_ms": 20}}]'
    HARK_TTS_PROVIDERS='[{"kind": "scripted", "options": {"first_audio_ms": 100}}]'

With ``"precise": true`` every wait ends on its deadline rather than up to a millisecond after it
(asyncio's timers wake on the selector's whole milliseconds, ~0.4 ms late on average): the last
1.5 ms are spent yielding to the event loop. That costs CPU, so only the overhead scenario, which
subtracts the scripted delays as exact, asks for it (for hark's fakes and Pipecat's alike).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hark.engines.base import (
    ChatMessage,
    Float32Array,
    LLMChunk,
    LLMOptions,
    STTCapabilities,
    Transcript,
    TTSCapabilities,
)
from hark.errors import ConfigError

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

PLUGIN_ENV = {"HARK_SERVER_PLUGINS": '["hark.bench.fakes"]'}
"""The environment that gives a ``hark serve`` process the ``scripted`` kind."""


def register() -> None:
    """The plugin hook: kind ``scripted`` in the STT, LLM and TTS tables."""
    from hark.engines import registry

    for stage, engine in (("stt", "ScriptedSTT"), ("llm", "ScriptedLLM"), ("tts", "ScriptedTTS")):
        registry.register(stage, "scripted", f"{__name__}:{engine}")


DEFAULT_TRANSCRIPT = "What is the weather like in Paris today?"
DEFAULT_REPLY = "Paris is sunny and mild today. You will not need an umbrella."


@dataclass(frozen=True, slots=True)
class Script:
    """The timing every fake follows (the issue's figures are the defaults)."""

    stt_final_ms: float = 0.0
    llm_first_token_ms: float = 200.0
    llm_token_ms: float = 20.0
    tts_first_audio_ms: float = 100.0
    reply: str = DEFAULT_REPLY
    transcript: str = DEFAULT_TRANSCRIPT
    first_clause_words: int = 0
    """The server's ``conversation.first_clause_words``: where its first TTS chunk may end."""


def tokens(text: str) -> list[str]:
    """Word-sized tokens with their leading space, as OpenAI-style streams deliver them."""
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def first_sentence_token_index(reply: str, first_clause_words: int = 0) -> int:
    """Index of the token that lets a streaming sentence splitter cut the first sentence.

    A splitter cannot cut at "today." before it sees what follows ("3.5", "Dr. Smith", "example.com"),
    so the first sentence is known only when the *next* token arrives: hark's ``SentenceSplitter``
    and Pipecat's ``SimpleTextAggregator`` both wait for it. Falls back to the last token when the
    reply has one sentence."""
    from hark.pipeline.sentences import SentenceSplitter

    splitter = SentenceSplitter(first_clause_words=first_clause_words)
    parts = tokens(reply)
    for index, token in enumerate(parts):
        if splitter.push(token):
            return index
    return len(parts) - 1


def scripted_first_audio_ms(script: Script) -> float:
    """The fakes' share of voice-to-voice: end of turn → the first sentence's audio exists.

    STT final + LLM time to the token that completes the first sentence (see
    ``first_sentence_token_index``) + TTS time to first audio."""
    k = first_sentence_token_index(script.reply, script.first_clause_words)
    llm_ms = script.llm_first_token_ms + k * script.llm_token_ms
    return script.stt_final_ms + llm_ms + script.tts_first_audio_ms


def _number(options: Mapping[str, Any], key: str, default: float, *, label: str) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 60_000:
        raise ConfigError(f"{label}: options.{key} must be a number of milliseconds (0-60000)")
    return float(value)


PRECISE_TAIL_S = 0.0015


async def sleep_until(deadline: float, *, precise: bool = False) -> None:
    """Sleep to an absolute time.monotonic() deadline (no sleep when it has passed)."""
    delay = deadline - time.monotonic() - (PRECISE_TAIL_S if precise else 0.0)
    if delay > 0:
        await asyncio.sleep(delay)
    while precise and time.monotonic() < deadline:  # noqa: ASYNC110 (polling the clock is the point)
        await asyncio.sleep(0)  # other tasks run; this one is back on the next loop pass


def _flag(options: Mapping[str, Any], key: str, *, label: str) -> bool:
    value = options.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{label}: options.{key} must be true or false")
    return value


class ScriptedSTT:
    """Returns ``text`` ``final_ms`` after it is called, whatever the audio."""

    sample_rate = 16_000
    capabilities = STTCapabilities(streaming=False)

    def __init__(
        self,
        *,
        final_ms: float = 0.0,
        text: str = DEFAULT_TRANSCRIPT,
        name: str = "scripted",
        precise: bool = False,
    ):
        self.name = name
        self.precise = precise
        self.final_ms = final_ms
        self.text = text
        self.calls = 0

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> ScriptedSTT:
        options = provider.options
        return cls(
            final_ms=_number(options, "final_ms", 0.0, label=f"stt provider {provider.label}"),
            text=str(options.get("text", DEFAULT_TRANSCRIPT)),
            name=provider.label,
            precise=_flag(options, "precise", label=f"stt provider {provider.label}"),
        )

    async def transcribe(
        self, audio: Float32Array, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        started = time.monotonic()
        self.calls += 1
        await sleep_until(started + self.final_ms / 1000.0, precise=self.precise)
        return Transcript(self.text, language or "en", duration_s=len(audio) / self.sample_rate)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class ScriptedLLM:
    """Streams ``reply`` word by word: the first token ``first_token_ms`` after the call, then one
    every ``token_ms``."""

    def __init__(
        self,
        *,
        first_token_ms: float = 200.0,
        token_ms: float = 20.0,
        reply: str = DEFAULT_REPLY,
        name: str = "scripted",
        precise: bool = False,
    ):
        self.name = name
        self.precise = precise
        self.first_token_ms = first_token_ms
        self.token_ms = token_ms
        self.reply = reply
        self.calls = 0

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> ScriptedLLM:
        options = provider.options
        label = f"llm provider {provider.label}"
        return cls(
            first_token_ms=_number(options, "first_token_ms", 200.0, label=label),
            token_ms=_number(options, "token_ms", 20.0, label=label),
            reply=str(options.get("reply", DEFAULT_REPLY)),
            name=provider.label,
            precise=_flag(options, "precise", label=label),
        )

    async def stream(
        self, messages: Sequence[ChatMessage], options: LLMOptions | None = None
    ) -> AsyncIterator[LLMChunk]:
        started = time.monotonic()
        self.calls += 1
        for index, token in enumerate(tokens(self.reply)):
            deadline = started + (self.first_token_ms + index * self.token_ms) / 1000.0
            await sleep_until(deadline, precise=self.precise)
            yield token

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def tone(duration_ms: float, rate: int, *, frequency: float = 220.0, amplitude: float = 0.1) -> bytes:
    """A quiet sine: PCM16 mono (what the fake TTS "says")."""
    n = max(1, round(rate * duration_ms / 1000.0))
    t = np.arange(n, dtype=np.float32) / rate
    wave = amplitude * np.sin(2 * math.pi * frequency * t)
    return bytes((wave * 32767).astype("<i2").tobytes())


class ScriptedTTS:
    """Delivers a sentence's audio (a quiet tone, ``ms_per_char`` per character) ``first_audio_ms``
    after it is called. With ``stream_ms`` > 0 the audio comes in 100 ms pieces spread over that
    many milliseconds after the first; by default it all comes at once."""

    capabilities = TTSCapabilities(streaming=True)

    def __init__(
        self,
        *,
        first_audio_ms: float = 100.0,
        ms_per_char: float = 10.0,
        stream_ms: float = 0.0,
        sample_rate: int = 24_000,
        name: str = "scripted",
        precise: bool = False,
    ):
        self.name = name
        self.precise = precise
        self.first_audio_ms = first_audio_ms
        self.ms_per_char = ms_per_char
        self.stream_ms = stream_ms
        self.sample_rate = sample_rate
        self.calls = 0

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> ScriptedTTS:
        options = provider.options
        label = f"tts provider {provider.label}"
        rate = options.get("sample_rate", 24_000)
        if not isinstance(rate, int) or not 8000 <= rate <= 48_000:
            raise ConfigError(f"{label}: options.sample_rate must be 8000-48000")
        return cls(
            first_audio_ms=_number(options, "first_audio_ms", 100.0, label=label),
            ms_per_char=_number(options, "ms_per_char", 10.0, label=label),
            stream_ms=_number(options, "stream_ms", 0.0, label=label),
            sample_rate=rate,
            name=provider.label,
            precise=_flag(options, "precise", label=label),
        )

    def audio_for(self, text: str) -> bytes:
        return tone(max(20.0, len(text) * self.ms_per_char), self.sample_rate)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        started = time.monotonic()
        self.calls += 1
        if not text.strip():
            return
        pcm = self.audio_for(text)
        piece = self.sample_rate // 10 * 2
        pieces = [pcm[i : i + piece] for i in range(0, len(pcm), piece)]
        first = started + self.first_audio_ms / 1000.0
        for index, chunk in enumerate(pieces):
            offset = self.stream_ms * index / max(1, len(pieces) - 1) if len(pieces) > 1 else 0.0
            await sleep_until(first + offset / 1000.0, precise=self.precise)
            yield chunk

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
