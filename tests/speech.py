"""Test speech from espeak-ng: a different voice from hark's own TTS."""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import wave

import numpy as np
import soxr

RATE = 24_000


def require_espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        import pytest

        if os.environ.get("CI"):
            raise RuntimeError("espeak-ng is missing; `make test` installs it")
        pytest.skip("espeak-ng is not installed (make test installs it)")
    return path


@functools.lru_cache(maxsize=64)
def speak(text: str, *, voice: str = "en-us", words_per_minute: int = 160, rate: int = RATE) -> bytes:
    """PCM16 mono at ``rate`` of espeak-ng saying ``text``."""
    binary = require_espeak()
    wav = subprocess.run(
        [binary, "-v", voice, "-s", str(words_per_minute), "--stdout", text], check=True, capture_output=True
    ).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        source_rate = reader.getframerate()
        frames = reader.readframes(reader.getnframes())
    audio = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    audio = soxr.resample(audio, source_rate, rate)
    return bytes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


def silence(ms: int, rate: int = RATE) -> bytes:
    return bytes(rate * ms // 1000 * 2)


def write_wav(path: str | os.PathLike[str] | io.BytesIO, pcm: bytes, rate: int = RATE) -> None:
    with wave.open(path if isinstance(path, io.BytesIO) else str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
