"""faster-whisper with a short encoder window: the real model still hears the words, and the
encoder is given the window asked for (its speed is the benchmark's to measure)."""

from __future__ import annotations

from typing import Any

import pytest

from hark.audio import pcm16_to_float
from hark.config import FasterWhisperOptions
from hark.engines.stt.faster_whisper import FasterWhisperSTT
from tests.speech import speak

QUESTION = "What is the weather like today?"


def spy_on_encoder(stt: FasterWhisperSTT) -> list[int]:
    """Record the width of every encoder input (a spy on the model object, not on hark's code)."""
    widths: list[int] = []
    encode = stt._model.encode

    def recording(features: Any) -> Any:
        result = encode(features)
        widths.append(int(result.shape[1]))  # encoder output positions: input frames / 2
        return result

    stt._model.encode = recording
    return widths


@pytest.mark.parametrize("window_s", [0.0, 10.0])
async def test_short_turns_are_transcribed_with_the_window_asked_for(window_s: float) -> None:
    stt = FasterWhisperSTT(FasterWhisperOptions(encoder_window_s=window_s))
    widths = spy_on_encoder(stt)
    audio = pcm16_to_float(speak(QUESTION, rate=16_000))
    transcript = await stt.transcribe(audio)
    words = transcript.text.lower().strip(" .?!").split()
    print(f"[stt window {window_s:g} s] {transcript.text!r}, encoder positions {widths}")
    assert words[:4] == ["what", "is", "the", "weather"]
    # The encoder halves its input: 1500 positions for Whisper's 30 s, 500 for a 10 s window.
    assert widths and set(widths) == {1500 if window_s == 0 else 500}
    await stt.aclose()


async def test_a_turn_longer_than_the_window_is_encoded_with_a_margin() -> None:
    # The window is what is measured here: the turn as cut, without the steady re-cut around it.
    stt = FasterWhisperSTT(FasterWhisperOptions(encoder_window_s=2.0, steady_input=False))
    widths = spy_on_encoder(stt)
    audio = pcm16_to_float(speak(QUESTION, rate=16_000))  # about 1.6 s: 1.6 + 3 s of margin
    await stt.transcribe(audio)
    expected = int((len(audio) / 16_000 + 3.0) * 100) // 2
    assert widths and abs(widths[0] - expected) <= 1
    await stt.aclose()
