"""Fake engines for the worker pool's tests, with knobs instead of models.

They live in the package (not under tests/) because a spawned worker must import them: pass
:func:`fake_factory` as the pool's ``factory``. The first audio sample selects a behaviour.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from hark.config import ProviderConfig, Settings
from hark.engines.base import Float32Array, STTCapabilities, Transcript, TTSCapabilities
from hark.errors import EngineError

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

    async def transcribe(self, audio: Float32Array, *, language: str | None = None) -> Transcript:
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
