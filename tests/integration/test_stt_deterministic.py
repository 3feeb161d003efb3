"""faster-whisper's deterministic decode: a partial transcript of the same audio reads the same
every time (its temperature fallback samples), and a final keeps the fallback."""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr

from hark.audio.pcm import pcm16_to_float
from hark.bench.audio import RATE, espeak
from hark.config import FasterWhisperOptions
from hark.engines.stt.faster_whisper import FasterWhisperSTT
from tests.speech import require_espeak


def spy_on_decode(stt: FasterWhisperSTT) -> list[dict[str, Any]]:
    """Record the options of every decode (a spy on the model object, not on hark's code)."""
    calls: list[dict[str, Any]] = []
    transcribe = stt._model.transcribe

    def recording(audio: Any, **options: Any) -> Any:
        calls.append(options)
        return transcribe(audio, **options)

    stt._model.transcribe = recording
    return calls


def leak() -> np.ndarray:
    """A hard prefix: hark's own words at -12 dB, cut 520 ms in. With the fallback tiny.en reads
    it differently run to run (five ways in six when this was written: "the wind of the wind.",
    "The wind of the...", ...)."""
    require_espeak()
    pcm = espeak("the weather for the rest of the week", voice="en-us+m7")
    assert pcm is not None
    audio = soxr.resample(pcm16_to_float(pcm), RATE, 16_000) * 10 ** (-12 / 20)
    return np.ascontiguousarray(audio[: 16 * 520], dtype=np.float32)


async def test_a_deterministic_decode_is_greedy_and_reads_the_same_audio_the_same() -> None:
    stt = FasterWhisperSTT(FasterWhisperOptions())
    calls = spy_on_decode(stt)
    audio = leak()
    texts = {(await stt.transcribe(audio, deterministic=True)).text for _ in range(3)}
    assert len(texts) == 1
    assert [call.get("temperature") for call in calls] == [0.0] * 3
    await stt.transcribe(audio)
    assert "temperature" not in calls[-1]  # a final keeps faster-whisper's fallback
    await stt.aclose()
