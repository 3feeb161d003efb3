"""Scenario 7, meetings: who spoke when, on a corpus of 2-5-speaker espeak-ng meetings.

Each meeting is built from espeak-ng voices (every speaker one voice, several turns each, one
one-word turn, one turn that starts a second before the previous one ends, so two voices
overlap) and streamed to a real ``hark serve`` (default engines: CAM++ in the worker pool) over
``/v1/meetings/stream``. From the final transcript:

* **DER** (diarisation error rate, frame-based at 10 ms, 0.25 s collar around every reference
  boundary, best one-to-one mapping of labels to voices): missed speech + false alarm + speaker
  confusion over reference speech. Scored with the overlap (a frame where two voices speak
  counts twice; hark gives one speaker per segment, so half of it is at best missed) and
  without it (overlapped frames left out).
* **speaker-count error**: |speakers found - voices| per meeting.
* **stop -> final per minute of audio**: how long the result takes after ``stop``, per minute
  of meeting, with the audio streamed at ``pace`` x real time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from hark.bench import stats
from hark.bench.audio import RATE, espeak, silence
from hark.bench.server import hark_server

VOICES = ("en-us", "en+f3", "en-us+m7", "en-us+f4", "en+m1")
SENTENCES = (
    "Good morning everyone, let's review the launch plan for the release.",
    "I think we should ship it on Friday after the final tests pass.",
    "The budget for the next quarter needs another careful look.",
    "Can somebody take the action item for the documentation?",
    "We have three open bugs that still block the release.",
    "Let me share the numbers from last week's customer survey.",
    "I will send the announcement to our customers next week.",
    "The new design looks much cleaner than the old one did.",
    "Our support team answered most tickets within a single day.",
    "Please review the pull request before lunch tomorrow.",
    "The server costs went down by almost a third this month.",
    "Marketing wants a short video for the product page.",
    "We should hire another engineer for the mobile team.",
    "The conference talk was accepted, so we need slides.",
    "Our biggest customer asked for a single sign on option.",
    "Testing on older phones found two crashes in the camera screen.",
)
GAP_MS = 700
OVERLAP_S = 1.0
FRAME_S = 0.01
COLLAR_S = 0.25


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    speakers: int
    pcm: bytes
    """PCM16 mono at 24 kHz."""
    turns: list[tuple[float, float, int]]
    """(start s, end s, speaker) of each turn's speech."""


def build(speakers: int, turns: int, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    order = list(range(speakers))
    while len(order) < turns:
        order.append(int(rng.choice([s for s in range(speakers) if s != order[-1]])))
    sentences = [SENTENCES[i % len(SENTENCES)] for i in rng.permutation(len(SENTENCES))]
    overlap_at = turns // 2
    track = np.zeros(int(0.4 * RATE), dtype=np.float32)
    reference: list[tuple[float, float, int]] = []
    for number, speaker in enumerate(order):
        text = "Bye." if number == turns - 1 else sentences[number % len(sentences)]
        pcm = espeak(text, voice=VOICES[speaker])
        if pcm is None:
            raise RuntimeError("the meetings bench needs espeak-ng")
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        gap = -int(OVERLAP_S * RATE) if number == overlap_at else int(GAP_MS / 1000 * RATE)
        start = max(track.size + gap, 0)
        end = start + audio.size
        if end > track.size:
            track = np.concatenate([track, np.zeros(end - track.size, dtype=np.float32)])
        track[start:end] += audio
        reference.append((start / RATE, end / RATE, speaker))
    track = np.concatenate([track, np.frombuffer(silence(GAP_MS), dtype="<i2").astype(np.float32)])
    pcm16 = bytes((np.clip(track, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return Case(f"{speakers} speakers #{seed}", speakers, pcm16, reference)


def corpus(quick: bool) -> list[Case]:
    per_size = 1 if quick else 3
    return [
        build(k, 3 * k + 2 if quick else 14, seed=100 * k + n) for k in (2, 3, 4, 5) for n in range(per_size)
    ]


def _frames(spans: list[tuple[float, float, Any]], length: int) -> list[set[Any]]:
    grid: list[set[Any]] = [set() for _ in range(length)]
    for start, end, who in spans:
        for frame in range(int(start / FRAME_S), min(length, int(end / FRAME_S))):
            grid[frame].add(who)
    return grid


def der(
    reference: list[tuple[float, float, int]],
    hypothesis: list[tuple[float, float, str]],
    duration_s: float,
    *,
    overlap: bool,
) -> dict[str, float]:
    """Frame-based DER and its parts (see the module docstring)."""
    length = int(duration_s / FRAME_S) + 1
    ref, hyp = _frames(reference, length), _frames(hypothesis, length)
    skip = np.zeros(length, dtype=bool)
    for start, end, _ in reference:
        for edge in (start, end):
            skip[max(0, int((edge - COLLAR_S) / FRAME_S)) : int((edge + COLLAR_S) / FRAME_S)] = True
    if not overlap:
        skip |= np.array([len(r) > 1 for r in ref])
    labels = sorted({h for _, _, h in hypothesis})
    voices = sorted({v for _, _, v in reference})
    best: dict[str, float] | None = None
    for chosen in itertools.permutations(labels, min(len(labels), len(voices))):
        mapping = dict(zip(chosen, voices, strict=True))
        missed = false_alarm = confusion = total = 0.0
        for frame in range(length):
            if skip[frame]:
                continue
            r = ref[frame]
            h = {mapping.get(x, f"extra-{x}") for x in hyp[frame]}
            total += len(r)
            missed += max(0, len(r) - len(h))
            false_alarm += max(0, len(h) - len(r))
            confusion += min(len(r), len(h)) - len(r & h)
        error = (missed + false_alarm + confusion) / max(total, 1.0)
        if best is None or error < best["der"]:
            best = {
                "der": error,
                "missed": missed / max(total, 1.0),
                "false_alarm": false_alarm / max(total, 1.0),
                "confusion": confusion / max(total, 1.0),
            }
    return {k: round(v, 4) for k, v in (best or {"der": 1.0}).items()}


async def _stream(url: str, case: Case, pace: float) -> tuple[dict[str, Any], float]:
    import websockets

    frame = RATE * 2 // 50
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": RATE}))
        begin = time.monotonic()
        for n, offset in enumerate(range(0, len(case.pcm), frame)):
            await ws.send(case.pcm[offset : offset + frame])
            await asyncio.sleep(max(0.0, begin + (n + 1) * 0.02 / pace - time.monotonic()))
        stopped = time.monotonic()
        await ws.send(json.dumps({"type": "stop"}))
        async with asyncio.timeout(600):
            async for message in ws:
                event = json.loads(message)
                if event["type"] == "final":
                    return event, time.monotonic() - stopped
    raise RuntimeError("the meeting ended without a final event")


def run(*, quick: bool, log: Any = print) -> dict[str, Any]:
    pace = 2.0 if quick else 1.0
    cases = corpus(quick)
    rows: list[dict[str, Any]] = []
    with hark_server({}) as server:
        for case in cases:
            final, took = asyncio.run(_stream(server.ws_base + "/v1/meetings/stream", case, pace))
            duration = len(case.pcm) / 2 / RATE
            hypothesis = [(s["start"], s["end"], s["speaker"]) for s in final["transcript"] if s["speaker"]]
            row = {
                "meeting": case.name,
                "speakers": case.speakers,
                "found": len(final["speakers"]),
                "turns": len(case.turns),
                "seconds": round(duration, 1),
                "method": final["diarization"],
                "der": der(case.turns, hypothesis, duration, overlap=True),
                "der_no_overlap": der(case.turns, hypothesis, duration, overlap=False),
                "stop_to_final_s": round(took, 2),
                "stop_to_final_s_per_min": round(took / (duration / 60.0), 2),
            }
            log(
                f"  {case.name}: found {row['found']}, DER {row['der']['der']:.1%} "
                f"({row['der_no_overlap']['der']:.1%} without overlap), stop -> final {took:.1f} s"
            )
            rows.append(row)
    count_errors = [abs(r["found"] - r["speakers"]) for r in rows]
    return {
        "pace": pace,
        "meetings": rows,
        "der": round(float(np.mean([r["der"]["der"] for r in rows])), 4),
        "der_no_overlap": round(float(np.mean([r["der_no_overlap"]["der"] for r in rows])), 4),
        "speaker_count_error": round(float(np.mean(count_errors)), 2),
        "speaker_count_exact": f"{sum(e == 0 for e in count_errors)}/{len(rows)}",
        "stop_to_final_s_per_min": stats.summary([r["stop_to_final_s_per_min"] for r in rows], (50, 95)),
    }


def table(result: dict[str, Any]) -> str:
    """The meetings section of docs/benchmarks.md."""
    lines = [
        f"Streamed at {result['pace']:g}x real time to `hark serve` (default engines). DER at 10 ms "
        f"frames with a {COLLAR_S} s collar; with overlap a frame where two voices speak counts twice.",
        "",
        "| meeting | voices | found | turns | audio (s) | DER | DER without overlap "
        "| miss / FA / confusion | stop → final (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["meetings"]:
        d = r["der"]
        lines.append(
            f"| {r['meeting']} | {r['speakers']} | {r['found']} | {r['turns']} | {r['seconds']} | "
            f"{d['der']:.1%} | {r['der_no_overlap']['der']:.1%} | "
            f"{d.get('missed', 0):.1%} / {d.get('false_alarm', 0):.1%} / {d.get('confusion', 0):.1%} | "
            f"{r['stop_to_final_s']} |"
        )
    per_min = result["stop_to_final_s_per_min"]
    lines += [
        "",
        f"Mean DER {result['der']:.1%} ({result['der_no_overlap']:.1%} without overlap); speaker-count "
        f"error {result['speaker_count_error']} (exact in {result['speaker_count_exact']}); stop → final "
        f"per minute of audio p50 {per_min['p50']} s, max {per_min['max']} s.",
    ]
    return "\n".join(lines)
