"""Steady STT input: the same words give the same audio, wherever the turn's cut began.

A turn's audio is cut on the VAD's 32 ms grid, so the speech starts 0-31 ms later or earlier
in it depending on where the user began; Whisper's log-mel frames are 10 ms apart, and greedy
tiny.en decoded one espeak-ng question differently at 5 of 9 leading-silence offsets
(docs/benchmarks.md, "Steady ears"). Here the speech is found to the sample by its short-time
energy and re-cut: a fixed lead of silence, the speech, a fixed tail. Pure: no I/O, no state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hark.engines.base import Float32Array

WINDOW_MS = 5.0
"""Short-time energy window: shorter than a phone, longer than one pitch period."""


@dataclass(frozen=True, slots=True)
class SteadyConfig:
    lead_ms: float = 100.0
    """Silence before the speech's first audible sample (zeros, plus up to ``keep_ms`` of
    what came before it). Chosen on 24 espeak-ng turns with tiny.en: 50-200 ms cost 0-3 more word
    errors of 144 than the audio as cut, 300 ms and more made it repeat itself (23-123 errors)."""
    tail_ms: float = 300.0
    """Silence after its last audible sample (100 ms: one more error than 300 ms)."""
    keep_ms: float = 30.0
    """Of the audio just outside the audible span, this much is kept (soft onsets, breath)."""
    floor_db: float = -50.0
    """Never count as speech what is below this (dBFS, RMS over ``WINDOW_MS``)."""
    below_peak_db: float = 40.0
    """Speech is anything within this of the loudest window ..."""
    above_noise_db: float = 10.0
    """... and this far above the noise floor (the quietest tenth of the windows)."""


DEFAULT = SteadyConfig()


def _energy(audio: Float32Array, window: int) -> Float32Array:
    """Mean square over the ``window`` samples ending at each sample (the first ones: fewer)."""
    squares = np.concatenate(([0.0], np.cumsum(audio.astype(np.float64) ** 2)))
    ends = np.arange(1, len(audio) + 1)
    starts = np.maximum(0, ends - window)
    return ((squares[ends] - squares[starts]) / window).astype(np.float32)


def audible_span(audio: Float32Array, rate: int, config: SteadyConfig = DEFAULT) -> tuple[int, int] | None:
    """[first, last) samples of the audible part of ``audio``; None when nothing is audible."""
    window = max(1, round(rate * WINDOW_MS / 1000))
    if len(audio) < window:
        return None
    energy = _energy(audio, window)
    steps = energy[window - 1 :: window]  # non-overlapping windows, for the peak and noise floor
    peak = float(steps.max()) if steps.size else float(energy.max())
    noise = float(np.percentile(steps, 10)) if steps.size else 0.0
    threshold = max(
        10 ** (config.floor_db / 10),
        peak * 10 ** (-config.below_peak_db / 10),
        noise * 10 ** (config.above_noise_db / 10),
    )
    loud = np.flatnonzero(energy > threshold)
    if loud.size == 0:
        return None
    # energy[i] covers (i - window, i]: the span starts where the first loud window starts.
    return max(0, int(loud[0]) - window + 1), int(loud[-1]) + 1


def steady_input(audio: Float32Array, rate: int, config: SteadyConfig = DEFAULT) -> Float32Array:
    """``audio`` re-cut to a fixed lead, its audible span and a fixed tail; unchanged when
    nothing in it is audible (Whisper then hears what it would have heard)."""
    span = audible_span(audio, rate, config)
    if span is None:
        return audio
    first, last = span
    keep = round(rate * config.keep_ms / 1000)
    lead, tail = round(rate * config.lead_ms / 1000), round(rate * config.tail_ms / 1000)
    start, end = max(0, first - min(keep, lead)), min(len(audio), last + min(keep, tail))
    before = np.zeros(lead - (first - start), dtype=np.float32)
    after = np.zeros(tail - (end - last), dtype=np.float32)
    return np.concatenate([before, audio[start:end].astype(np.float32, copy=False), after])
