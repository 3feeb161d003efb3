"""Percentiles and the overhead arithmetic: pure functions, no I/O.

The overhead of one turn (all times on the bench client's monotonic clock)::

    voice_to_voice = first_audio_received - speech_end_sent
    end_of_turn_wait = decision_sent - speech_end_sent
    overhead = voice_to_voice - end_of_turn_wait - scripted_delays
             = first_audio_received - decision_sent - scripted_delays

``speech_end_sent``: when the client sent the 20 ms frame holding the last audible sample.
``decision_sent``: when it sent the frame holding the last sample of the VAD chunk on which the
server ended the turn (hark reports where the trailing silence began, ``audio_end_ms``; the turn
ends ``end_chunks`` chunks of 32 ms later; Pipecat's side reports the chunk itself). Until then
the server could not have known: that wait is the VAD's (the speech's fade plus the configured
silence), not the framework's. ``scripted_delays``: what the fakes spend by design
(``fakes.scripted_first_audio_ms``). What is left is the framework's: transport both ways,
parsing, the input resampler's buffering, VAD inference on the last chunk, turn logic, the
hand-offs between stages and the first audio frame's encoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

VAD_CHUNK_SAMPLES = 512
VAD_RATE = 16_000
VAD_CHUNK_MS = VAD_CHUNK_SAMPLES * 1000 // VAD_RATE  # 32


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0-100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def summary(
    values: Sequence[float], quantiles: Sequence[int] = (50, 95, 99), *, digits: int = 1
) -> dict[str, Any]:
    """``{p50, p95, p99, mean, min, max, n}`` rounded to ``digits``, or every figure None when empty."""
    keys = [f"p{q}" for q in quantiles]
    if not values:
        return {**dict.fromkeys(keys), "mean": None, "min": None, "max": None, "n": 0}
    out: dict[str, Any] = {
        key: round(percentile(values, q), digits) for key, q in zip(keys, quantiles, strict=True)
    }
    out.update(
        mean=round(sum(values) / len(values), digits),
        min=round(min(values), digits),
        max=round(max(values), digits),
        n=len(values),
    )
    return out


def end_chunks(end_silence_ms: float, chunk_ms: float = VAD_CHUNK_MS) -> int:
    """Silent VAD chunks that end a turn (hark's ``TurnDetector`` rounds the same way)."""
    return max(1, round(end_silence_ms / chunk_ms))


def decision_chunk(audio_end_ms: int, end_silence_ms: float, chunk_ms: float = VAD_CHUNK_MS) -> int:
    """Index of the VAD chunk on which the turn ended: the trailing silence began at chunk
    ``audio_end_ms / chunk_ms`` and the turn ends on its ``end_chunks``-th chunk."""
    return int(audio_end_ms // chunk_ms) + end_chunks(end_silence_ms, chunk_ms) - 1


def position_frame(
    chunk: int,
    *,
    chunk_samples: int = VAD_CHUNK_SAMPLES,
    vad_rate: int = VAD_RATE,
    input_rate: int = 24_000,
    frame_samples: int = 480,
) -> int:
    """Index of the client's input frame (``frame_samples`` at ``input_rate``) that holds the last
    sample of VAD chunk ``chunk``: the earliest frame after which the turn could have ended."""
    last_sample = (chunk + 1) * chunk_samples * input_rate // vad_rate - 1
    return last_sample // frame_samples


def completing_frame(
    cumulative_samples: Sequence[int], chunk: int, chunk_samples: int = VAD_CHUNK_SAMPLES
) -> int:
    """Index of the first input frame after which the resampled stream held chunk ``chunk``
    whole. ``cumulative_samples[i]``: resampled samples out after frame i (non-decreasing)."""
    need = (chunk + 1) * chunk_samples
    low, high = 0, len(cumulative_samples)
    while low < high:
        mid = (low + high) // 2
        if cumulative_samples[mid] >= need:
            high = mid
        else:
            low = mid + 1
    if low == len(cumulative_samples):
        raise ValueError(f"chunk {chunk} was never completed by the frames sent")
    return low


@dataclass(frozen=True, slots=True)
class TurnTimes:
    """One measured turn; times in seconds on the client's monotonic clock."""

    speech_end_sent: float
    decision_sent: float
    first_audio_received: float
    scripted_ms: float

    @property
    def voice_to_voice_ms(self) -> float:
        return (self.first_audio_received - self.speech_end_sent) * 1000.0

    @property
    def end_of_turn_wait_ms(self) -> float:
        return (self.decision_sent - self.speech_end_sent) * 1000.0

    @property
    def overhead_ms(self) -> float:
        return self.voice_to_voice_ms - self.end_of_turn_wait_ms - self.scripted_ms


def server_overhead_ms(voice_to_voice_ms: float, end_of_turn_ms: float, scripted_ms: float) -> float:
    """The same from the server's ``hark.latency``: end of turn detected → first audio sent,
    less the fakes' delays (no transport, no VAD inference)."""
    return voice_to_voice_ms - end_of_turn_ms - scripted_ms


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, 3)


def across(runs: Sequence[dict[str, Any]], keys: Sequence[str] = ("p50", "p95", "p99")) -> dict[str, Any]:
    """Runs' summaries combined: ``median`` (each key's median over the runs) and ``spread``
    (each key's [min, max]). Runs without a figure are left out."""
    median: dict[str, Any] = {}
    spread: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        median[key] = round(percentile(values, 50), 1) if values else None
        spread[key] = [min(values), max(values)] if values else None
    return {"runs": len(runs), "median": median, "spread": spread}
