"""EspeakTTS with the real espeak-ng binary (skipped where it is not installed)."""

from __future__ import annotations

import shutil
import struct
from typing import Any

import numpy as np
import pytest

from hark.config import ProviderConfig, Settings
from hark.engines.base import TTS
from hark.engines.tts.espeak import EspeakTTS, parse_wav_header
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.servers.common import collect

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="apt-get install espeak-ng")


def make(**fields: Any) -> EspeakTTS:
    return EspeakTTS.from_config(ProviderConfig(kind="espeak", **fields), Settings())


def voiced_seconds(pcm: bytes, rate: int) -> float:
    """Seconds of audio in 10 ms frames that are clearly not silence."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    frames = samples[: len(samples) // (rate // 100) * (rate // 100)].reshape(-1, rate // 100)
    return float((np.sqrt((frames**2).mean(axis=1)) > 300).sum()) / 100


@needs_espeak
async def test_speaks_a_sentence() -> None:
    tts = make()
    assert isinstance(tts, TTS) and tts.sample_rate == 22050
    await tts.check()
    chunks = await collect(tts.synthesize("Hello, this is the fallback voice speaking."))
    assert chunks and all(len(c) % 2 == 0 for c in chunks)
    pcm = b"".join(chunks)
    assert len(pcm) / 2 / 22050 > 0.5
    assert voiced_seconds(pcm, 22050) > 0.5
    await tts.aclose()


@needs_espeak
async def test_text_that_looks_like_options_is_spoken() -> None:
    # Read as options, "-v xx" would pick a voice that does not exist and espeak-ng would fail.
    pcm = b"".join(await collect(make().synthesize("-v xx")))
    assert voiced_seconds(pcm, 22050) > 0.2
    pcm = b"".join(await collect(make().synthesize("--help")))
    assert voiced_seconds(pcm, 22050) > 0.2


@needs_espeak
async def test_voice_and_speed() -> None:
    slow = b"".join(
        await collect(make(voice="en-gb", options={"speed": 100}).synthesize("One two three four."))
    )
    fast = b"".join(
        await collect(make(voice="en-gb", options={"speed": 300}).synthesize("One two three four."))
    )
    assert len(slow) > 1.5 * len(fast)


@needs_espeak
async def test_unknown_voice_is_a_final_error() -> None:
    with pytest.raises(EngineError, match="voice") as caught:
        await collect(make(voice="xx-nonexistent").synthesize("Hello."))
    assert caught.value.retryable is False


@needs_espeak
async def test_total_timeout_is_enforced() -> None:
    long_text = "This sentence goes on. " * 4000
    with pytest.raises(EngineError, match="timed out") as caught:
        await collect(make(timeout=2.0, total_timeout=0.3).synthesize(long_text))
    assert caught.value.retryable is True


async def test_blank_text_is_silence() -> None:
    assert await collect(make().synthesize(" \n")) == []


async def test_missing_binary_is_unavailable_with_the_install_command() -> None:
    tts = make(options={"binary": "/nonexistent/espeak-ng"})
    with pytest.raises(EngineUnavailable, match="apt-get install espeak-ng"):
        await tts.check()
    with pytest.raises(EngineUnavailable, match="apt-get install espeak-ng"):
        await collect(tts.synthesize("Hello."))


def test_speed_is_validated() -> None:
    with pytest.raises(ConfigError, match="speed"):
        make(options={"speed": "fast"})


def test_wav_header_parsing() -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    head = b"RIFF\xff\xff\xff\x7fWAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\x7f"
    assert parse_wav_header(head[:30]) is None  # Not all there yet.
    assert parse_wav_header(head + b"\x01\x02") == (22050, 44)
    with pytest.raises(ValueError, match="not a WAV"):
        parse_wav_header(b"ID3\x04" + b"\x00" * 40)
    stereo = head.replace(struct.pack("<HH", 1, 1), struct.pack("<HH", 1, 2), 1)
    with pytest.raises(ValueError, match="mono PCM16"):
        parse_wav_header(stereo)
