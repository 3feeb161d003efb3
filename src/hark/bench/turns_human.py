"""``hark bench --only turns``, human speech: does Smart Turn tell a pause inside a turn from
the end of one, on real voices?

The recording is pyannote.audio's 30 s two-speaker phone call (``ears_human``), with its speaker
turns (``sample.rttm``). A pause of at least ``PAUSE_MS`` inside one speaker's stretch (where
Silero VAD hears no speech and the RTTM has nobody else talking), or between two stretches of
one speaker with nobody else starting in between, is an *inner pause*; the end of a stretch after which the
other speaker talks next is a *turn end* (overlapping speech counts for whoever talks on). At each,
Smart Turn hears that speaker's turn from its first stretch (with hark's 300 ms prefix; the call
is one channel, so the other voice is in it where they overlap) up to ``ASK_MS`` into the
silence (less when the other speaker comes in sooner), and says "done" when its probability
reaches the threshold of an eagerness. One recording of 30 s: too small to decide a default.
"""

from __future__ import annotations

import asyncio
import statistics
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soxr

from hark.bench.ears_human import INSTALL, sample_folder
from hark.engines.base import Float32Array
from hark.pipeline.turns import SEMANTIC_POLICIES, Eagerness, TurnConfig

RATE = 16_000
PAUSE_MS = 200
ASK_MS = 200
PREFIX_S = 0.3
EAGERNESS = (Eagerness.HIGH, Eagerness.MEDIUM, Eagerness.LOW)
CAVEAT = "human speech, one 30 s recording, too small to decide a default"


@dataclass(frozen=True, slots=True)
class Stretch:
    speaker: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Point:
    kind: Literal["inner_pause", "turn_end"]
    speaker: str
    turn_start_s: float
    stop_s: float
    """Where the speaker stopped."""
    heard_until_s: float


def read_rttm(text: str) -> list[Stretch]:
    """``SPEAKER <file> <channel> <start> <duration> <NA> <NA> <speaker> …`` lines."""
    stretches = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            stretches.append(Stretch(fields[7], start, start + duration))
    return sorted(stretches, key=lambda s: (s.start_s, s.end_s))


def points(stretches: list[Stretch], silences: Sequence[tuple[float, float]] = ()) -> list[Point]:
    """Every inner pause of at least PAUSE_MS and every turn end, in the order they happen.
    ``silences``: (start, end) of the VAD's silent runs of at least PAUSE_MS; one that lies inside
    a stretch, with no other speaker talking over it, is an inner pause too."""
    found: list[Point] = []
    turn_start: dict[str, float] = {}
    for s in stretches:
        turn_start.setdefault(s.speaker, s.start_s)
        for quiet_from, quiet_to in silences:
            inside = s.start_s < quiet_from and quiet_to < s.end_s
            alone = not any(
                t.speaker != s.speaker and t.start_s < quiet_to and t.end_s > quiet_from for t in stretches
            )
            if inside and alone:
                heard = quiet_from + ASK_MS / 1000
                found.append(Point("inner_pause", s.speaker, turn_start[s.speaker], quiet_from, heard))
        # Who talks next: of the stretches still going after this one ends, the first to start.
        after = [t for t in stretches if t is not s and t.end_s > s.end_s]
        if not after:
            continue  # the recording ends: nobody can say whose turn it is
        following = min(after, key=lambda t: (t.start_s, t.end_s))
        gap_s = following.start_s - s.end_s
        if following.speaker == s.speaker:
            if gap_s * 1000 >= PAUSE_MS:
                heard = s.end_s + ASK_MS / 1000
                found.append(Point("inner_pause", s.speaker, turn_start[s.speaker], s.end_s, heard))
            continue
        heard = s.end_s + min(ASK_MS / 1000, max(0.0, gap_s))
        found.append(Point("turn_end", s.speaker, turn_start.pop(s.speaker), s.end_s, heard))
    return found


def load(folder: Path) -> tuple[Float32Array, list[Stretch]] | None:
    wav, rttm = folder / "sample.wav", folder / "sample.rttm"
    if not (wav.is_file() and rttm.is_file()):
        return None
    with wave.open(str(wav)) as reader:
        rate = reader.getframerate()
        pcm = reader.readframes(reader.getnframes())
    audio: Float32Array = (np.frombuffer(pcm, dtype="<i2") / np.float32(32768)).astype(np.float32)
    if rate != RATE:
        audio = soxr.resample(audio, rate, RATE).astype(np.float32)
    return audio, read_rttm(rttm.read_text(encoding="utf-8"))


async def silences(audio: Float32Array, vad: Any) -> list[tuple[float, float]]:
    """(start, end) in seconds of every run of at least PAUSE_MS that Silero VAD (hark's listener
    model, at the turn detector's off threshold) does not call speech."""
    chunk = vad.chunk_samples
    chunks = [audio[i : i + chunk] for i in range(0, audio.size - chunk + 1, chunk)]
    quiet = [p < TurnConfig().off_threshold for p in await vad.probabilities(vad.new_stream(), chunks)]
    runs: list[tuple[float, float]] = []
    start: int | None = None
    for i, q in enumerate([*quiet, False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) * chunk * 1000 / RATE >= PAUSE_MS:
                runs.append((start * chunk / RATE, i * chunk / RATE))
            start = None
    return runs


def heard(audio: Float32Array, point: Point) -> Float32Array:
    start = max(0, int((point.turn_start_s - PREFIX_S) * RATE))
    return audio[start : int(point.heard_until_s * RATE)]


GROUPS: dict[str, Callable[[Point], bool]] = {
    "inner_pause": lambda point: point.kind == "inner_pause",
    "turn_end": lambda point: point.kind == "turn_end",
    "turn_end_after_silence": lambda point: point.kind == "turn_end" and point.heard_until_s > point.stop_s,
}
"""A turn end the other speaker talks over has no silence after it: the model hears speech go on
(the call is one channel)."""


def summarise(probabilities: list[tuple[Point, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"speech": f"pyannote.audio sample.wav: {CAVEAT}"}
    groups = {name: [p for point, p in probabilities if member(point)] for name, member in GROUPS.items()}
    for name, ps in groups.items():
        out[f"{name}s"] = len(ps)
        out[f"{name}_probability_p50"] = round(statistics.median(ps), 2) if ps else None
    for eagerness in EAGERNESS:
        threshold = SEMANTIC_POLICIES[eagerness].threshold
        row: dict[str, Any] = {"threshold": threshold}
        for name, ps in groups.items():
            row[f"done_at_{name}s"] = f"{sum(p >= threshold for p in ps)}/{len(ps)}"
        out[f"semantic_{eagerness.value}"] = row
    out["points"] = [
        {
            "kind": point.kind,
            "speaker": point.speaker,
            "stop_s": round(point.stop_s, 2),
            "silence_heard_ms": round((point.heard_until_s - point.stop_s) * 1000),
            "p": round(p, 3),
        }
        for point, p in probabilities
    ]
    return out


async def _run(log: Callable[[str], None]) -> dict[str, Any]:
    from hark.engines.turn.smart_turn import SmartTurn
    from hark.engines.vad.silero import SileroVAD

    loaded = load(sample_folder())
    if loaded is None:
        return {"skipped": f"no human speech installed ({INSTALL})"}
    audio, stretches = loaded
    vad = SileroVAD()
    try:
        quiet = await silences(audio, vad)
    finally:
        await vad.aclose()
    model = SmartTurn()
    try:
        probabilities = [(p, await model.end_probability(heard(audio, p))) for p in points(stretches, quiet)]
    finally:
        await model.aclose()
    results = summarise(probabilities)
    log(f"   human speech ({CAVEAT}): " + str({k: v for k, v in results.items() if k != "points"}))
    return results


def run(*, log: Callable[[str], None] = print) -> dict[str, Any]:
    return asyncio.run(_run(log))
