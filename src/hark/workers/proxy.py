"""STT, TTS and speaker-embedding engines that run in the worker pool: callers cannot tell
them from local ones.

A proxy holds no model: its sample rate and capabilities are what the workers reported when
they warmed up. Closing a proxy does not stop the pool; whoever started the pool closes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from hark.engines.base import Float32Array, SpeakerCapabilities, STTCapabilities, Transcript, TTSCapabilities
from hark.errors import EngineError, EngineUnavailable
from hark.workers.pool import WorkerPool
from hark.workers.proto import Embed, Synthesize, Transcribe


class _Pooled:
    def __init__(self, pool: WorkerPool, stage_index: int, name: str) -> None:
        self.pool = pool
        self.stage_index = stage_index
        self.name = name

    async def check(self) -> None:
        if self.pool.size == 0:
            raise EngineUnavailable("no engine worker is running (restarting?)", engine=self.name)

    async def aclose(self) -> None:
        return None  # the pool's owner closes it


class PooledSTT(_Pooled):
    def __init__(
        self, pool: WorkerPool, stage_index: int, sample_rate: int, capabilities: STTCapabilities, name: str
    ) -> None:
        super().__init__(pool, stage_index, name)
        self.sample_rate = sample_rate
        self.capabilities = capabilities

    async def transcribe(
        self, audio: Float32Array, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        result = await self.pool.call(self.stage_index, Transcribe(audio, language, deterministic))
        if not isinstance(result, Transcript):
            raise EngineError(f"worker returned {type(result).__name__}, not a Transcript", engine=self.name)
        return result


class PooledTTS(_Pooled):
    def __init__(
        self, pool: WorkerPool, stage_index: int, sample_rate: int, capabilities: TTSCapabilities, name: str
    ) -> None:
        super().__init__(pool, stage_index, name)
        self.sample_rate = sample_rate
        self.capabilities = capabilities

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        # Pieces as the worker's engine yields them (Piper: the first ~0.28 s of a sentence first).
        async for pcm in self.pool.stream(self.stage_index, Synthesize(text)):
            if not isinstance(pcm, bytes):
                raise EngineError(f"worker returned {type(pcm).__name__}, not PCM bytes", engine=self.name)
            yield pcm


class PooledSpeaker(_Pooled):
    def __init__(
        self,
        pool: WorkerPool,
        stage_index: int,
        sample_rate: int,
        capabilities: SpeakerCapabilities,
        name: str,
    ) -> None:
        super().__init__(pool, stage_index, name)
        self.sample_rate = sample_rate
        self.capabilities = capabilities

    async def embed(self, clips: list[Float32Array]) -> list[Float32Array | None]:
        clips = [np.ascontiguousarray(clip, dtype=np.float32) for clip in clips]
        result = await self.pool.call(self.stage_index, Embed(clips))
        if not isinstance(result, list) or len(result) != len(clips):
            raise EngineError("worker returned no embedding per clip", engine=self.name)
        return result


def pooled_engine(pool: WorkerPool, stage_index: int) -> PooledSTT | PooledTTS | PooledSpeaker:
    """The proxy for engine ``stage_index`` of a started pool, as its workers described it."""
    info = pool.engine_info(stage_index)
    if info.stage == "stt" and isinstance(info.capabilities, STTCapabilities):
        return PooledSTT(pool, stage_index, info.sample_rate, info.capabilities, info.name)
    if info.stage == "tts" and isinstance(info.capabilities, TTSCapabilities):
        return PooledTTS(pool, stage_index, info.sample_rate, info.capabilities, info.name)
    if info.stage == "speaker" and isinstance(info.capabilities, SpeakerCapabilities):
        return PooledSpeaker(pool, stage_index, info.sample_rate, info.capabilities, info.name)
    raise ValueError(
        f"engine {stage_index} is a {info.stage} engine; only stt, tts and speaker run in workers"
    )


def pooled_engines(pool: WorkerPool) -> list[PooledSTT | PooledTTS | PooledSpeaker]:
    """A proxy per engine of a started pool, in ``stage_providers`` order."""
    return [pooled_engine(pool, index) for index in range(len(pool.stages))]
