"""Corpus (d), text half, offline: would a partial transcript of hark's own leaked voice cancel
its reply?

Each -12 dB leak of ``overlap.LEAKS`` (espeak-ng, every voice of ``overlap.VOICES``) is cut into
growing prefixes, every 40 ms from 400 ms, as the barge-in check transcribes the speech so far
while it goes on. Each prefix is transcribed by faster-whisper (tiny.en, hark's defaults) and
judged by the interruption gate as an interim transcript against the reply's first sentence.
Passes alternate between the two decodes (fallback, deterministic, fallback, ...) so both see
the same load. Rerun: ``python -m hark.bench.leak_prefixes [passes]``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

import numpy as np
import soxr

from hark.audio.pcm import pcm16_to_float
from hark.bench.audio import RATE
from hark.bench.overlap import LEAK_DB, LEAKS, REPLY, VOICES, _say
from hark.config import FasterWhisperOptions
from hark.engines.stt.faster_whisper import FasterWhisperSTT
from hark.pipeline.interruptions import Action, InterruptionGate, InterruptionPolicy

STT_RATE = 16_000
FIRST_MS = 400
STEP_MS = 40
OWN = REPLY.split(". ")[0] + "."


def prefixes() -> list[tuple[str, str, int, np.ndarray]]:
    """(voice, leak, ms, audio at 16 kHz) for every prefix."""
    cut = []
    for voice in VOICES:
        for leak in LEAKS:
            audio = soxr.resample(pcm16_to_float(_say(leak, voice, LEAK_DB)), RATE, STT_RATE)
            length_ms = len(audio) * 1000 // STT_RATE
            for ms in range(FIRST_MS, length_ms + 1, STEP_MS):
                cut.append((voice, leak, ms, np.ascontiguousarray(audio[: STT_RATE * ms // 1000])))
    return cut


def cancels(text: str, logprob: float | None) -> bool:
    gate = InterruptionGate(InterruptionPolicy())
    gate.speech_started(0.0)
    return gate.heard(text, OWN, complete=False, now=0.0, logprob=logprob) is Action.INTERRUPT


async def one_pass(stt: FasterWhisperSTT, cut: list[Any], *, deterministic: bool) -> dict[str, Any]:
    texts: dict[tuple[str, str, int], str] = {}
    cancelled: list[tuple[str, str, int]] = []
    ms_per_decode: list[float] = []
    for voice, leak, at_ms, audio in cut:
        started = time.perf_counter()
        transcript = await stt.transcribe(audio, deterministic=deterministic)
        ms_per_decode.append((time.perf_counter() - started) * 1000)
        texts[(voice, leak, at_ms)] = transcript.text
        if cancels(transcript.text, transcript.logprob):
            cancelled.append((voice, leak, at_ms))
    return {"texts": texts, "cancelled": cancelled, "ms": ms_per_decode}


async def main(passes: int) -> None:
    cut = prefixes()
    stt = FasterWhisperSTT(FasterWhisperOptions())
    await stt.transcribe(cut[0][3])  # warm
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for n in range(passes):
        for deterministic in (False, True):
            result = await one_pass(stt, cut, deterministic=deterministic)
            runs[deterministic].append(result)
            by_voice = {v: sum(1 for c in result["cancelled"] if c[0] == v) for v in VOICES}
            print(
                f"pass {n + 1} {'greedy  ' if deterministic else 'fallback'}: "
                f"{len(result['cancelled'])} of {len(cut)} prefixes would cancel {by_voice}; "
                f"decode p50 {statistics.median(result['ms']):.1f} ms, "
                f"mean {statistics.fmean(result['ms']):.1f} ms",
                flush=True,
            )
    for deterministic, results in runs.items():
        keys = results[0]["texts"].keys()
        varying = sum(1 for k in keys if len({r["texts"][k] for r in results}) > 1)
        print(
            f"{'greedy' if deterministic else 'fallback'}: {varying} of {len(cut)} prefixes read "
            f"differently across {len(results)} passes"
        )
        cancelling = sorted({c for r in results for c in r["cancelled"]})
        for key in cancelling:
            times = sum(1 for r in results if key in r["cancelled"])
            voice, leak, at_ms = key
            print(f"  cancels in {times} of {len(results)}: {voice}, {leak!r} at {at_ms} ms")
    await stt.aclose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2))
