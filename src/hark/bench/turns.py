"""``hark bench --only turns``: how well hark takes turns, on a corpus anyone can rebuild.

The corpus is espeak-ng speech in several voices: (a) turns with 300-900 ms pauses inside them
(numbers, addresses, lists, "um") that must not be cut off, and (b) short complete turns that
should be answered quickly. Each case runs through hark's own listening path (causal
resampler, Silero VAD, turn detector, Smart Turn) in process, fed in 20 ms frames; the audio
clock decides, and the turn model's measured time per decision is added to the end-of-turn
delay. Smart Turn was trained on human speech, so these figures rest on synthetic voices.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hark.bench.audio import RATE, espeak, frames, silence
from hark.engines.base import Float32Array, TurnModel
from hark.pipeline.listener import Listener
from hark.pipeline.turns import Eagerness, TurnConfig, TurnEvent

VOICES = ("en-us", "en+f3", "en-us+m7", "en+m3")
PAUSES_MS = (300, 500, 700, 900)
PAUSED = (
    ("My phone number is", "five five five", "two three four", "nine eight seven six."),
    ("Send it to john", "at example", "dot com."),
    ("I need eggs,", "milk,", "bread,", "and some butter."),
    ("I was thinking", "um", "maybe we could go tomorrow."),
    ("The code is", "four seven", "two nine."),
    ("Let me see,", "I think the answer is", "forty two."),
)
SHORT = (
    "Yes.",
    "No.",
    "Paris.",
    "Okay, thanks.",
    "What time is it?",
    "Turn on the lights.",
    "Sure, go ahead.",
    "Tell me a joke.",
)
CUT_MARGIN_MS = 150
"""A turn that ends this long before the last audible sample was cut off (espeak-ng's final
consonants trail off below the VAD's threshold for up to ~100 ms)."""
LEAD_MS = 500
TAIL_MS = 3500
MODES: dict[str, TurnConfig] = {
    "server_vad": TurnConfig(),
    **{
        f"semantic_{e.value}": TurnConfig(eagerness=e)
        for e in (Eagerness.HIGH, Eagerness.MEDIUM, Eagerness.LOW)
    },
}


@dataclass(frozen=True, slots=True)
class Case:
    kind: str
    """"paused" (must stay one turn) or "short" (should end quickly)."""
    voice: str
    pcm: bytes
    """Lead-in silence, the speech with its pauses, a long silent tail; PCM16 at 24 kHz."""
    speech_end_ms: float
    pause_ends_ms: tuple[float, ...]
    """Where each inner pause ends (speech resumes)."""


def corpus(voices: tuple[str, ...] = VOICES) -> list[Case]:
    cases: list[Case] = []
    for voice in voices:
        for n, parts in enumerate(PAUSED):
            pcm, resumes = silence(LEAD_MS), []
            for i, text in enumerate(parts):
                if i:
                    pcm += silence(PAUSES_MS[(n + i) % len(PAUSES_MS)])
                    resumes.append(len(pcm) / 2 / RATE * 1000)
                pcm += _say(text, voice)
            end = len(pcm) / 2 / RATE * 1000
            cases.append(Case("paused", voice, pcm + silence(TAIL_MS), end, tuple(resumes)))
        for text in SHORT:
            pcm = silence(LEAD_MS) + _say(text, voice)
            end = len(pcm) / 2 / RATE * 1000
            cases.append(Case("short", voice, pcm + silence(TAIL_MS), end, ()))
    return cases


def _say(text: str, voice: str) -> bytes:
    pcm = espeak(text, voice=voice)
    if not pcm:
        raise RuntimeError("the turn-taking corpus needs espeak-ng (make test-deps installs it)")
    return pcm


@dataclass
class TimedModel:
    """The turn model, with the wall time of each decision recorded."""

    model: TurnModel
    seconds: list[float] = field(default_factory=list)
    name: str = ""
    sample_rate: int = 0

    def __post_init__(self) -> None:
        self.name, self.sample_rate = self.model.name, self.model.sample_rate

    async def end_probability(self, audio: Float32Array) -> float:
        started = time.perf_counter()
        try:
            return await self.model.end_probability(audio)
        finally:
            self.seconds.append(time.perf_counter() - started)

    async def aclose(self) -> None:
        await self.model.aclose()


@dataclass(frozen=True, slots=True)
class Outcome:
    cut_off: bool
    delay_ms: float | None
    """From the end of speech to the turn's end (audio clock plus the deciding model call)."""


async def run_case(case: Case, config: TurnConfig, vad: Any, model: TimedModel | None) -> Outcome:
    listener = Listener(vad, config, input_rate=RATE, prefix_ms=300, max_turn_s=30, turn_model=model)
    fed_ms = 0.0
    for frame in frames(case.pcm):
        calls = len(model.seconds) if model else 0
        boundaries = await listener.push(frame)
        fed_ms += 20
        for boundary in boundaries:
            if boundary.event is not TurnEvent.SPEECH_STOPPED:
                continue
            if boundary.audio_ms < case.speech_end_ms - CUT_MARGIN_MS:
                return Outcome(cut_off=True, delay_ms=None)  # ended inside the speech
            decided = model.seconds[-1] * 1000 if model and len(model.seconds) > calls else 0.0
            return Outcome(cut_off=False, delay_ms=fed_ms - case.speech_end_ms + decided)
    return Outcome(cut_off=False, delay_ms=None)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def _run(log: Callable[[str], None], voices: tuple[str, ...]) -> dict[str, Any]:
    from hark.engines.turn.smart_turn import SmartTurn
    from hark.engines.vad.silero import SileroVAD

    cases = corpus(voices)
    vad = SileroVAD()
    model = TimedModel(SmartTurn())
    results: dict[str, Any] = {
        "corpus": {
            "voices": list(voices),
            "paused": sum(c.kind == "paused" for c in cases),
            "short": sum(c.kind == "short" for c in cases),
            "speech": "espeak-ng (synthetic)",
        }
    }
    try:
        for mode, config in MODES.items():
            outcomes = [
                (case, await run_case(case, config, vad, model if config.eagerness else None))
                for case in cases
            ]
            paused = [o for c, o in outcomes if c.kind == "paused"]
            short_cut = [o for c, o in outcomes if c.kind == "short" and o.cut_off]
            short = [o.delay_ms for c, o in outcomes if c.kind == "short" and o.delay_ms is not None]
            results[mode] = {
                "false_cutoff_pct": round(100 * sum(o.cut_off for o in paused) / len(paused), 1),
                "short_end_of_turn_ms_p50": _pct(short, 0.5),
                "short_end_of_turn_ms_p95": _pct(short, 0.95),
                "short_cut_off": len(short_cut),
                "short_missed": sum(
                    1 for c, o in outcomes if c.kind == "short" and o.delay_ms is None and not o.cut_off
                ),
            }
            log(f"   {mode}: {results[mode]}")
        if model.seconds:
            results["decision_ms_p50"] = round(statistics.median(model.seconds) * 1000, 1)
            results["decisions"] = len(model.seconds)
    finally:
        await model.aclose()
        await vad.aclose()
    return results


def run(*, log: Callable[[str], None] = print, voices: tuple[str, ...] = VOICES) -> dict[str, Any]:
    return asyncio.run(_run(log, voices))
