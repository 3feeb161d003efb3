"""``hark bench --only turns``: how well hark takes turns, on a corpus anyone can rebuild.

The corpus is espeak-ng speech in several voices: (a) turns with 300-900 ms pauses inside them
(numbers, addresses, lists, "um") that must not be cut off, each one utterance with SSML breaks
so its prosody runs on across the pauses, beside the same turns spoken in separate fragments
and joined with silence (every fragment ending as a finished sentence does: a worst case), and
(b) short complete turns that should be answered quickly. Each case runs through hark's own
listening path (causal resampler, Silero VAD, turn detector, Smart Turn and, for the semantic
modes, tiny.en transcribing the speech before each pause as the speculation does) in process,
fed in 20 ms frames (see run_case for the clock). Smart Turn was trained on human speech, and tiny.en hears
espeak-ng differently from people, so these figures rest on synthetic voices.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hark.bench.audio import RATE, espeak, frames, gaps, silence, ssml
from hark.bench.turns_timed import Heard, PauseWords, TimedModel
from hark.engines.base import STT, TurnModel
from hark.pipeline.completeness import read
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
PAUSE_SHARE = 0.6
"""A silence is a requested pause if it lasts at least this share of it (and of the shortest)."""
PAUSE_SLACK_MS = 250
"""... and at most this much longer (measured: 0-60 ms longer in every voice)."""
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
    """"paused" (must stay one turn), "fragments" (the same, worst case) or "short" (should end
    quickly)."""
    voice: str
    pcm: bytes
    """Lead-in silence, the speech with its pauses, a long silent tail; PCM16 at 24 kHz."""
    speech_end_ms: float
    pause_ends_ms: tuple[float, ...]
    """Where each inner pause ends (speech resumes)."""
    pause_starts_ms: tuple[float, ...] = ()
    """Where each inner pause starts (the last audible sample before it)."""


def corpus(voices: tuple[str, ...] = VOICES) -> list[Case]:
    cases: list[Case] = []
    for voice in voices:
        for n, parts in enumerate(PAUSED):
            pauses = [PAUSES_MS[(n + i) % len(PAUSES_MS)] for i in range(1, len(parts))]
            cases.append(paused_case(parts, pauses, voice))
            cases.append(fragments_case(parts, pauses, voice))
        for text in SHORT:
            pcm = silence(LEAD_MS) + _say(text, voice)
            end = len(pcm) / 2 / RATE * 1000
            cases.append(Case("short", voice, pcm + silence(TAIL_MS), end, ()))
    return cases


def paused_case(parts: tuple[str, ...], pauses_ms: list[int], voice: str) -> Case:
    """(a): one espeak-ng utterance with SSML breaks, so the sentence's prosody runs across its
    pauses. Where each pause ends is read off the audio (``find_pauses``), not assumed."""
    pcm = _say(ssml(parts, pauses_ms), voice, markup=True)
    found = find_pauses(pcm, pauses_ms)
    lead = silence(LEAD_MS)
    end = (len(lead) + len(pcm)) / 2 / RATE * 1000
    resumes = tuple(LEAD_MS + stop for _, stop in found)
    starts = tuple(LEAD_MS + start for start, _ in found)
    return Case("paused", voice, lead + pcm + silence(TAIL_MS), end, resumes, starts)


def fragments_case(parts: tuple[str, ...], pauses_ms: list[int], voice: str) -> Case:
    """(a) worst case: each part spoken on its own and the parts joined with silence, so every
    part ends with a finished sentence's falling pitch before its pause."""
    pcm, resumes, starts = silence(LEAD_MS), [], []
    for i, text in enumerate(parts):
        if i:
            starts.append(len(pcm) / 2 / RATE * 1000)
            pcm += silence(pauses_ms[i - 1])
            resumes.append(len(pcm) / 2 / RATE * 1000)
        pcm += _say(text, voice)
    end = len(pcm) / 2 / RATE * 1000
    return Case("fragments", voice, pcm + silence(TAIL_MS), end, tuple(resumes), tuple(starts))


def find_pauses(pcm: bytes, pauses_ms: list[int]) -> list[tuple[float, float]]:
    """The silences in ``pcm`` that are the requested pauses, in order, as (start, end) ms.
    espeak-ng makes each break a little longer than asked (a trailing consonant's fade, a
    comma's own pause) and leaves no other silence near that long inside a sentence; anything
    else means the corpus is not what it claims, so it raises."""
    found = gaps(pcm, min_ms=PAUSE_SHARE * min(pauses_ms))
    if len(found) != len(pauses_ms) or any(
        not PAUSE_SHARE * asked <= stop - start <= asked + PAUSE_SLACK_MS
        for asked, (start, stop) in zip(pauses_ms, found, strict=False)
    ):
        heard = [round(stop - start) for start, stop in found]
        raise RuntimeError(f"asked espeak-ng for pauses of {pauses_ms} ms, found {heard} ms")
    return found


HEARD_INTO_PAUSE_MS = 300
"""How far into an inner pause ``pause_probabilities`` lets the model hear (``medium``'s first ask)."""


async def pause_probabilities(cases: list[Case], model: TurnModel) -> dict[str, Any]:
    """The model alone, once per inner pause of (a) and its worst case: the turn from its start
    up to ``HEARD_INTO_PAUSE_MS`` into the pause, and how often it says "done" (p >= 0.5, the
    threshold of ``high`` and ``medium``). Says whether a build's prosody is what the model
    hears, apart from the listener's policy and the words."""
    from hark.audio import Resampler, pcm16_to_float

    out: dict[str, Any] = {}
    for kind in ("paused", "fragments"):
        probabilities = []
        for case in (c for c in cases if c.kind == kind):
            audio = Resampler(RATE, model.sample_rate).process(pcm16_to_float(case.pcm), last=True)
            for start in case.pause_starts_ms:
                until = int((start + HEARD_INTO_PAUSE_MS) * model.sample_rate / 1000)
                probabilities.append(await model.end_probability(audio[:until]))
        if probabilities:
            out[kind] = {
                "pauses": len(probabilities),
                "done": sum(p >= 0.5 for p in probabilities),
                "probability_p50": round(statistics.median(probabilities), 2),
            }
    return out


def _say(text: str, voice: str, *, markup: bool = False) -> bytes:
    pcm = espeak(text, voice=voice, markup=markup)
    if not pcm:
        raise RuntimeError("the turn-taking corpus needs espeak-ng (make test-deps installs it)")
    return pcm


@dataclass(frozen=True, slots=True)
class Outcome:
    cut_off: bool
    delay_ms: float | None
    """From the end of speech to the turn's end (see run_case)."""
    words: str | None = None
    """What the pause's transcript said where a semantic turn ended (None: no transcript)."""
    ended_ms: int | None = None
    """Where the turn ended (the start of the silence that ended it)."""


async def run_case(
    case: Case,
    config: TurnConfig,
    vad: Any,
    model: TimedModel | None,
    stt: STT | None = None,
    transcribed: list[float] | None = None,
    heard: list[Heard] | None = None,
) -> Outcome:
    """One case through the listener. A semantic turn is fed as fast as it is heard except from
    each pause on, where frames come every 20 ms as from a live client, so the turn model and
    the pause's transcript take the wall time they would live; its delay is the audio clock up
    to the pause plus the wall time since. Without a semantic turn the audio clock decides.
    ``heard`` collects each pause's transcript and the model's answers (``Heard``)."""
    words = (
        PauseWords(stt, seconds=[] if transcribed is None else transcribed, heard=heard)
        if stt is not None
        else None
    )
    if model is not None and words is not None and heard is not None:
        model.answered = words.model_said
    listener = Listener(
        vad, config, input_rate=RATE, prefix_ms=300, max_turn_s=30, turn_model=model, transcripts=words
    )
    if words is not None:
        words.listener = listener
    resumes = list(case.pause_ends_ms)
    paced: tuple[float, float] | None = None  # (audio clock, wall clock) when this pause was reported
    fed_ms = 0.0
    try:
        for frame in frames(case.pcm):
            if paced is not None:
                due = paced[1] + (fed_ms - paced[0]) / 1000
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            calls = len(model.seconds) if model else 0
            boundaries = await listener.push(frame)
            fed_ms += 20
            while resumes and fed_ms >= resumes[0]:
                resumes.pop(0)
                paced = None
            for boundary in boundaries:
                if boundary.event is TurnEvent.PAUSED and config.eagerness is not None:
                    if words is not None:
                        words.transcript_at(boundary.audio_ms)  # as intake starts its speculation
                    paced = (fed_ms, time.perf_counter())
                if boundary.event is not TurnEvent.SPEECH_STOPPED:
                    continue
                said = _said(words, boundary.audio_ms)
                if boundary.audio_ms < case.speech_end_ms - CUT_MARGIN_MS:  # ended inside the speech
                    return Outcome(cut_off=True, delay_ms=None, words=said, ended_ms=boundary.audio_ms)
                if paced is not None:
                    delay = paced[0] - case.speech_end_ms + (time.perf_counter() - paced[1]) * 1000
                else:
                    decided = model.seconds[-1] * 1000 if model and len(model.seconds) > calls else 0.0
                    delay = fed_ms - case.speech_end_ms + decided
                return Outcome(cut_off=False, delay_ms=delay, words=said, ended_ms=boundary.audio_ms)
        return Outcome(cut_off=False, delay_ms=None)
    finally:
        if model is not None:
            model.answered = None
        if words is not None:
            await words.aclose()


def _said(words: PauseWords | None, audio_ms: int) -> str | None:
    if words is None or words.current is None or words.current[0] != audio_ms:
        return None
    task = words.current[1]
    return task.result().text if task.done() and not task.cancelled() and not task.exception() else None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _share(outcomes: list[Outcome]) -> float | None:
    return round(100 * sum(o.cut_off for o in outcomes) / len(outcomes), 1) if outcomes else None


def _figures(outcomes: list[tuple[Case, Outcome]]) -> dict[str, Any]:
    paused = [o for c, o in outcomes if c.kind == "paused"]
    fragments = [o for c, o in outcomes if c.kind == "fragments"]
    short = [o for c, o in outcomes if c.kind == "short"]
    delays = [o.delay_ms for o in short if o.delay_ms is not None]
    return {
        "false_cutoff_pct": _share(paused),
        "false_cutoff_fragments_pct": _share(fragments),
        "short_end_of_turn_ms_p50": _pct(delays, 0.5),
        "short_end_of_turn_ms_p95": _pct(delays, 0.95),
        "short_cut_off": sum(o.cut_off for o in short),
        "short_missed": sum(1 for o in short if o.delay_ms is None and not o.cut_off),
        "cut_at_words": sorted(
            {f"{o.words} [{read(o.words).value}]" for o in paused if o.cut_off and o.words is not None}
        ),
    }


async def _run(
    log: Callable[[str], None], voices: tuple[str, ...], words: bool, sound_only: bool
) -> dict[str, Any]:
    from hark.config import FasterWhisperOptions
    from hark.engines.stt.faster_whisper import FasterWhisperSTT
    from hark.engines.turn.smart_turn import SmartTurn
    from hark.engines.vad.silero import SileroVAD

    cases = corpus(voices)
    vad = SileroVAD()
    model = TimedModel(SmartTurn())
    stt = FasterWhisperSTT(FasterWhisperOptions()) if words else None
    results: dict[str, Any] = {
        "corpus": {
            "voices": list(voices),
            "paused": sum(c.kind == "paused" for c in cases),
            "fragments": sum(c.kind == "fragments" for c in cases),
            "short": sum(c.kind == "short" for c in cases),
            "speech": "espeak-ng (synthetic)",
        },
        "load_average_before": _load(),
    }
    transcribed: list[float] = []
    runs: list[tuple[str, TurnConfig, STT | None]] = []
    for mode, config in MODES.items():
        if config.eagerness is None:
            runs.append((mode, config, None))
            continue
        if sound_only or stt is None:
            runs.append((f"{mode}_sound_only", config, None))
        if stt is not None:
            runs.append((mode, config, stt))
    try:
        for mode, config, mode_stt in runs:
            outcomes = []
            for case in cases:
                turn_model = model if config.eagerness else None
                outcome = await run_case(case, config, vad, turn_model, mode_stt, transcribed)
                outcomes.append((case, outcome))
            results[mode] = _figures(outcomes)
            log(f"   {mode}: {results[mode]}")
        results["model_at_inner_pauses"] = await pause_probabilities(cases, model.model)
        log(f"   model alone at inner pauses: {results['model_at_inner_pauses']}")
        if model.seconds:
            results["decision_ms_p50"] = round(statistics.median(model.seconds) * 1000, 1)
            results["decisions"] = len(model.seconds)
        if transcribed:
            results["pause_transcript_ms_p50"] = _pct([s * 1000 for s in transcribed], 0.5)
            results["pause_transcript_ms_p95"] = _pct([s * 1000 for s in transcribed], 0.95)
            results["pause_transcripts"] = len(transcribed)
        results["load_average_after"] = _load()
    finally:
        await model.aclose()
        await vad.aclose()
        if stt is not None:
            await stt.aclose()
    return results


def _load() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def run(
    *,
    log: Callable[[str], None] = print,
    voices: tuple[str, ...] = VOICES,
    words: bool = True,
    sound_only: bool = False,
) -> dict[str, Any]:
    """Every mode over the corpus; the semantic modes with the pause's tiny.en transcript
    (``words``) and, for comparison, with the turn model alone (``sound_only``)."""
    return asyncio.run(_run(log, voices, words, sound_only))
