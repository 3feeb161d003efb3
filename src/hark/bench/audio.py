"""The speech the bench client sends: espeak-ng when installed, else a synthetic voiced signal.

Both are checked against the Silero VAD before a run (``check_vad``): a bench whose speech the
VAD never hears would measure nothing.
"""

from __future__ import annotations

import functools
import io
import math
import shutil
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np
import soxr

from hark.audio import pcm16_to_float

RATE = 24_000
FRAME_MS = 20
FRAME_BYTES = RATE * 2 * FRAME_MS // 1000  # 960: 20 ms of PCM16 at 24 kHz
QUESTION = "What is the weather like today?"
INTERRUPTION = "Wait, stop."


@dataclass(frozen=True, slots=True)
class Utterance:
    pcm: bytes
    """PCM16 mono at 24 kHz, trimmed to the speech (no leading or trailing silence)."""
    source: str
    """"espeak-ng" or "synthetic"."""

    @property
    def duration_ms(self) -> float:
        return len(self.pcm) / 2 / RATE * 1000.0


def silence(ms: float) -> bytes:
    return bytes(int(RATE * ms / 1000) * 2)


AUDIBLE = 0.02
"""Full-scale level above which a sample is speech, not near-silence (``trim``, ``gaps``)."""


def _audible(audio: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the samples louder than ``threshold``."""
    return np.flatnonzero(np.abs(audio) > threshold)


def trim(audio: np.ndarray, rate: int, *, threshold: float = AUDIBLE) -> np.ndarray:
    """Cut leading and trailing near-silence, so "end of speech" is the last audible sample."""
    loud = _audible(audio, threshold)
    if loud.size == 0:
        return audio
    return audio[loud[0] : loud[-1] + 1]


def to_pcm16(audio: np.ndarray) -> bytes:
    return bytes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())


def espeak(
    text: str, *, voice: str = "en-us", words_per_minute: int = 170, markup: bool = False
) -> bytes | None:
    """espeak-ng's ``text`` (SSML where ``markup``, see ``ssml``), trimmed to the speech."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        return None
    options = ["-v", voice, "-s", str(words_per_minute), *(["-m"] if markup else [])]
    result = subprocess.run(
        [binary, *options, "--stdout", "--", text],
        check=False,
        capture_output=True,
    )
    if result.returncode != 0 or not result.stdout:
        return None
    with wave.open(io.BytesIO(result.stdout)) as reader:
        source_rate = reader.getframerate()
        frames = reader.readframes(reader.getnframes())
    audio = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    audio = soxr.resample(audio, source_rate, RATE)
    return to_pcm16(trim(audio, RATE))


def ssml(parts: Sequence[str], pauses_ms: Sequence[int]) -> str:
    """One utterance of ``parts`` with a pause of ``pauses_ms[i]`` after part ``i``, for
    ``espeak(..., markup=True)``: espeak-ng keeps the sentence's prosody across an SSML break,
    where parts spoken separately each end falling, as a finished sentence does."""
    if len(pauses_ms) != len(parts) - 1:
        raise ValueError("one pause between each two parts")
    spoken = [escape(parts[0])]
    for pause, part in zip(pauses_ms, parts[1:], strict=True):
        spoken.append(f'<break time="{int(pause)}ms"/> {escape(part)}')
    return "<speak>" + " ".join(spoken) + "</speak>"


def gaps(pcm: bytes, *, min_ms: float, threshold: float = AUDIBLE) -> list[tuple[float, float]]:
    """Where the speech in ``pcm`` (PCM16 at ``RATE``) falls silent for at least ``min_ms``: runs
    of samples below ``threshold`` (as ``trim`` reads silence) between two audible samples, as
    (start, end) in ms; the end is where speech resumes."""
    loud = _audible(pcm16_to_float(pcm), threshold)
    if loud.size < 2:
        return []
    apart = np.diff(loud)
    at = np.flatnonzero(apart > min_ms * RATE / 1000)
    return [((loud[i] + 1) / RATE * 1000, loud[i + 1] / RATE * 1000) for i in at]


def synthetic_speech(duration_ms: float = 1500.0, *, seed: int = 7) -> bytes:
    """A voiced, speech-like signal: a glottal pulse train (100-140 Hz, gliding) through three
    moving formant resonators, in 4-5 syllables a second with short gaps."""
    rng = np.random.default_rng(seed)
    n = int(RATE * duration_ms / 1000)
    t = np.arange(n) / RATE
    f0 = 120 + 20 * np.sin(2 * math.pi * 0.7 * t)
    phase = np.cumsum(f0 / RATE)
    source = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    source += 0.02 * rng.standard_normal(n)
    out = np.zeros(n)
    for f_lo, f_hi, bw in ((500, 800, 90), (1000, 1800, 120), (2300, 2700, 160)):
        # A time-varying two-pole resonator, run in blocks of 10 ms.
        y1 = y2 = 0.0
        block = RATE // 100
        for start in range(0, n, block):
            f = f_lo + (f_hi - f_lo) * (0.5 + 0.5 * math.sin(2 * math.pi * 3.1 * start / RATE + f_lo))
            r = math.exp(-math.pi * bw / RATE)
            a1, a2 = 2 * r * math.cos(2 * math.pi * f / RATE), -r * r
            seg = source[start : start + block]
            res = np.empty_like(seg)
            for i, x in enumerate(seg):
                y = x + a1 * y1 + a2 * y2
                res[i] = y
                y2, y1 = y1, y
            out[start : start + block] += res
    envelope = np.clip(np.sin(2 * math.pi * 2.2 * t) * 1.4 + 0.6, 0.0, 1.0) ** 0.5
    envelope[: RATE // 50] *= np.linspace(0, 1, RATE // 50)
    out *= envelope
    out = 0.5 * out / (np.max(np.abs(out)) or 1.0)
    return to_pcm16(trim(out.astype(np.float32), RATE))


@functools.lru_cache(maxsize=8)
def utterance(text: str = QUESTION, *, synthetic: bool = False) -> Utterance:
    """What the bench "says": espeak-ng's ``text``, or the synthetic signal when espeak-ng is
    missing (or ``synthetic`` is asked for)."""
    if not synthetic:
        pcm = espeak(text)
        if pcm:
            return Utterance(pcm, "espeak-ng")
    return Utterance(synthetic_speech(), "synthetic")


def frames(pcm: bytes) -> list[bytes]:
    """Cut PCM16 into 20 ms frames (the last one padded with silence)."""
    if len(pcm) % FRAME_BYTES:
        pcm += bytes(FRAME_BYTES - len(pcm) % FRAME_BYTES)
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def check_vad(speech: Utterance, *, threshold: float = 0.5) -> float:
    """Fraction of the speech's 32 ms chunks the Silero VAD scores at or above ``threshold``.
    Raises RuntimeError when it hears none (the bench would measure nothing)."""
    import asyncio

    from hark.audio import Resampler, pcm16_to_float
    from hark.engines.vad.silero import SileroVAD

    async def score() -> list[float]:
        vad = SileroVAD()
        try:
            audio = Resampler(RATE, vad.sample_rate).process(
                pcm16_to_float(silence(300) + speech.pcm + silence(300)), last=True
            )
            chunks = [
                audio[i : i + vad.chunk_samples]
                for i in range(0, len(audio) - vad.chunk_samples + 1, vad.chunk_samples)
            ]
            return await vad.probabilities(vad.new_stream(), chunks)
        finally:
            await vad.aclose()

    probabilities = asyncio.run(score())
    speech_chunks = probabilities[300 // 32 : -(300 // 32)]
    heard = sum(p >= threshold for p in speech_chunks) / max(1, len(speech_chunks))
    if heard == 0:
        raise RuntimeError(f"the Silero VAD hears none of the bench speech ({speech.source})")
    return heard
