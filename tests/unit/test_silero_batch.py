"""Silero VAD batched across streams gives each stream what it would get alone, and the
If-less model export it prefers scores as the original does."""

from __future__ import annotations

import asyncio

import numpy as np

from hark.audio import pcm16_to_float
from hark.engines.vad.silero import CHUNK, SileroVAD, default_model_path
from tests.speech import silence, speak


def speech_chunks() -> list[np.ndarray]:
    pcm = silence(300, rate=16_000) + speak("Please call my mother tomorrow morning.", rate=16_000)
    audio = pcm16_to_float(pcm + silence(600, rate=16_000))
    return [audio[i : i + CHUNK] for i in range(0, len(audio) - CHUNK + 1, CHUNK)]


async def alone(vad: SileroVAD, chunks: list[np.ndarray]) -> list[float]:
    stream = vad.new_stream()
    return [p for chunk in chunks for p in await vad.probabilities(stream, [chunk])]


async def test_batched_streams_match_each_stream_alone() -> None:
    vad = SileroVAD()
    chunks = speech_chunks()
    reference = await alone(vad, chunks)
    assert max(reference) > 0.9 and min(reference) < 0.1  # it hears the speech and the silence
    # Three streams at once, fed 1, 2 and 3 chunks per request, so batches mix lengths.
    streams = [vad.new_stream() for _ in range(3)]
    got: list[list[float]] = [[], [], []]
    positions = [0, 0, 0]
    while any(p < len(chunks) for p in positions):
        calls = []
        for k, stream in enumerate(streams):
            part = chunks[positions[k] : positions[k] + k + 1]
            positions[k] += k + 1
            calls.append(vad.probabilities(stream, part))
        for k, probabilities in enumerate(await asyncio.gather(*calls)):
            got[k].extend(probabilities)
    await vad.aclose()
    for probabilities in got:
        assert np.allclose(probabilities, reference, atol=1e-5)


async def test_the_preferred_model_file_scores_as_the_original() -> None:
    preferred = default_model_path()
    original = preferred.with_name("silero_vad.onnx")
    chunks = speech_chunks()
    a, b = SileroVAD(preferred), SileroVAD(original)
    assert np.allclose(await alone(a, chunks), await alone(b, chunks), atol=1e-5)
    await a.aclose()
    await b.aclose()
