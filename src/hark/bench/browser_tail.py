"""How much later does a call hear a turn's end through headless Chromium's own Opus encoder?

``python -m hark.bench.opus_vad`` answers it offline, with libopus through PyAV at a browser's
settings. This asks Chromium itself: the four sentences in four espeak-ng voices of
``opus_vad --voices`` go into one WAV (silence between them) that Chromium plays as its fake
microphone (the flags of tests/browser) on a real call to a ``hark serve`` with fast fakes, so
the encoder runs with the settings hark's answer gives it. The page keeps every encoded Opus
frame on the way out and records the track's own PCM (``browser_call``); the frames are decoded
here as hark's ``CallerAudio`` decodes (mono, 48 kHz).

The unknown start of Chromium's file playback cancels out: each sentence is found in the decoded
audio by cross-correlation with the WAV (``align``), which also removes every delay before and
inside the encoder. The encoder's own look-ahead (libopus "voip": 312 samples, 6.5 ms, the same
libopus) is part of what a call adds, so the ``chromium`` column puts it back; ``aligned`` is
without it (only how Silero scores the coded tail). Each sentence is then cut at ``opus_vad``'s 8
phases and run through hark's listener (server_vad defaults, no ``webrtc.codec_tail_ms``) beside
its PCM. Printed: ms by which the turn's trailing silence begins later than for the 24 kHz PCM
(what a WebSocket client sends), for the coded audio, the page's own PCM (``capture``), the
same cuts coded offline by ``opus_vad.browser_round_trip``, and coded minus the page's PCM
(``chromium-capture``: what the encoder adds for a page whose WebSocket would send that PCM).

``--processing voice`` asks for the microphone as hark's web client does (echo cancellation,
noise suppression, gain control on), ``raw`` with all three off. ``--pauses`` runs
``opus_vad --pauses``' sentence with a pause inside instead (two voices): how many turns end at
the pause, as PCM and coded, with and without the 32 ms allowance.

::

    python -m hark.bench.browser_tail [--runs 3] [--processing raw|voice|both] [--pauses]
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hark.bench.audio import RATE, silence
from hark.bench.browser_call import record, webm_pcm, write_wav
from hark.bench.webrtc import CALL_RATE, _resample

LOOK_AHEAD_SAMPLES = 312
"""libopus "voip" at 48 kHz (``opus_vad.LOOK_AHEAD_SAMPLES``; Chromium's encoder is libopus)."""
FRAME_SAMPLES = CALL_RATE // 50
GAP_MS = 1600
"""Silence before each sentence in the WAV: more than the longest lead plus the tail."""
LEADS_MS = range(1000, 1032, 4)
TAIL_MS = 1000
SEARCH_MS = 200
"""How far from the coarse match ``align`` looks for the sample-exact one."""


@dataclass(frozen=True, slots=True)
class Layout:
    """The fake microphone's WAV: ``pcm48`` (mono PCM16, 48 kHz) and where each sentence starts
    and how long it is in it, in samples."""

    pcm48: bytes
    starts: tuple[int, ...]
    lengths: tuple[int, ...]


def layout(sentences: Sequence[bytes]) -> Layout:
    """``sentences`` (PCM16 at 24 kHz, trimmed) each after ``GAP_MS`` of silence plus a few ms
    more each time (so the encoder's 20 ms frames meet them at different phases), then a gap."""
    pieces: list[bytes] = []
    starts: list[int] = []
    lengths: list[int] = []
    at = 0
    for i, pcm in enumerate(sentences):
        gap = _resample(silence(GAP_MS + (i * 7) % 20), CALL_RATE)
        speech = _resample(pcm, CALL_RATE)
        starts.append(at + len(gap) // 2)
        lengths.append(len(speech) // 2)
        pieces += [gap, speech]
        at += (len(gap) + len(speech)) // 2
    pieces.append(_resample(silence(GAP_MS), CALL_RATE))
    return Layout(b"".join(pieces), tuple(starts), tuple(lengths))


def ordered_payloads(frames: Sequence[tuple[int, bytes]]) -> tuple[list[bytes], int]:
    """Encoded frames ``(rtp_timestamp, payload)`` in timestamp order (the 32-bit timestamp may
    wrap), and how many 20 ms frames are missing between the first and the last."""
    if not frames:
        return [], 0
    first = frames[0][0]
    unwrapped = sorted(((ts - first) % 2**32, payload) for ts, payload in frames)
    span = unwrapped[-1][0] - unwrapped[0][0]
    missing = span // FRAME_SAMPLES + 1 - len(unwrapped)
    return [payload for _, payload in unwrapped], max(0, missing)


def describe(payloads: Sequence[bytes]) -> str:
    """What the encoder sent, from each payload's size and Opus TOC byte (RFC 6716 3.1): mean
    bitrate at 20 ms a frame, the share of stereo frames, and frames per mode (SILK, hybrid, CELT)."""
    if not payloads:
        return "no frames"
    kbps = statistics.fmean(len(payload) for payload in payloads) * 8 * 50 / 1000
    stereo = sum(bool(payload[0] & 0x04) for payload in payloads if payload) / len(payloads)
    modes = {"silk": 0, "hybrid": 0, "celt": 0}
    for payload in payloads:
        if payload:
            config = payload[0] >> 3
            modes["silk" if config < 12 else "hybrid" if config < 16 else "celt"] += 1
    counts = " ".join(f"{mode} {count}" for mode, count in modes.items())
    return f"{kbps:.1f} kb/s, stereo {stereo:.0%}, {counts}"


def _floats(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def _correlate(signal: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """Cross-correlation of ``pattern`` at every offset of ``signal`` (FFT), offsets 0 up to
    ``len(signal) - len(pattern)``."""
    size = 1 << int(len(signal) + len(pattern)).bit_length()
    spectrum = np.fft.rfft(signal, size) * np.conj(np.fft.rfft(pattern, size))
    return np.fft.irfft(spectrum, size)[: len(signal) - len(pattern) + 1]


def align(decoded: bytes, reference: bytes, *, coarse: int = 8) -> int:
    """The sample offset in ``decoded`` at which ``reference`` matches best (both mono PCM16 at
    the same rate): first on every ``coarse``-th sample, then sample-exact near that."""
    signal, pattern = _floats(decoded), _floats(reference)
    if len(pattern) > len(signal):
        raise ValueError("the reference is longer than the decoded audio")
    rough = int(np.argmax(_correlate(signal[::coarse], pattern[::coarse]))) * coarse
    window = SEARCH_MS * CALL_RATE // 1000 if coarse > 1 else 0
    low = max(0, rough - window)
    high = min(len(signal), rough + window + len(pattern))
    return low + int(np.argmax(_correlate(signal[low:high], pattern)))


def find(decoded: bytes, reference: bytes) -> int:
    """``align``, but where the best match sits too near an edge of ``decoded`` for ``cut`` (the
    file loops, so the sentence is there again), the best match in the rest."""
    at = align(decoded, reference)
    margin = (LEADS_MS[-1] + TAIL_MS + SEARCH_MS) * CALL_RATE // 1000
    total, length = len(decoded) // 2, len(reference) // 2
    if at < margin and at + length + 2 * margin <= total:
        rest = at + length
        return rest + align(decoded[rest * 2 :], reference)
    if at + length + margin > total and at >= 2 * margin:
        return align(decoded[: at * 2], reference)
    return at


def match(audio: bytes, at: int, reference: bytes) -> float:
    """How well ``reference`` matches ``audio`` at sample ``at`` (normalised correlation, 1.0 the
    same up to gain): a capture that lost samples inside the sentence matches poorly."""
    piece = _floats(audio[at * 2 : at * 2 + len(reference)])
    pattern = _floats(reference)
    if len(piece) != len(pattern):
        return 0.0
    norm = float(np.linalg.norm(piece) * np.linalg.norm(pattern))
    return float(np.dot(piece, pattern)) / norm if norm else 0.0


def intact(audio: bytes, at: int, reference: bytes) -> bool:
    """Whether ``reference`` found at sample ``at`` of ``audio`` is all there: its second half
    sits exactly half its length later (within 2 samples). An AudioWorklet under load loses
    samples; voice processing changes the waveform (``match`` falls) but not where it is."""
    half = len(reference) // 4
    window = 4 * FRAME_SAMPLES
    low = max(0, at + half - window)
    piece = audio[low * 2 : (at + 2 * half + window) * 2]
    if len(piece) < len(reference) - half * 2:
        return False
    return abs(low + align(piece, reference[half * 2 :], coarse=1) - (at + half)) <= 2


def cut(decoded: bytes, at: int, length: int, lead_ms: int, *, delay: int = 0) -> bytes:
    """``decoded`` around a sentence found at sample ``at`` (``length`` samples long): ``lead_ms``
    (plus ``delay`` samples) before it and ``TAIL_MS`` after, so the sentence starts ``delay``
    samples later in the cut than ``lead_ms``."""
    begin = at - lead_ms * CALL_RATE // 1000 - delay
    end = at + length + TAIL_MS * CALL_RATE // 1000
    if begin < 0 or end > len(decoded) // 2:
        raise ValueError("the sentence is too near an edge of the decoded audio")
    return decoded[begin * 2 : end * 2]


def summary(deltas: Sequence[float]) -> str:
    """``median``, ``mean``, quartiles and range of ``deltas`` (ms), ``n`` (NaN left out: no turn,
    or a capture with a gap)."""
    values = sorted(value for value in deltas if not math.isnan(value))
    if not values:
        return "n 0"
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return (
        f"median {statistics.median(values):+6.1f} mean {statistics.fmean(values):+6.1f} "
        f"q1 {quartiles[0]:+6.1f} q3 {quartiles[2]:+6.1f} "
        f"min {values[0]:+6.1f} max {values[-1]:+6.1f} n {len(values)}"
    )


def decode(payloads: Sequence[bytes]) -> bytes:
    """Mono PCM16 at 48 kHz, as hark's ``CallerAudio`` decodes a caller."""
    import fractions

    from av import Packet
    from av.codec import CodecContext

    decoder: Any = CodecContext.create("libopus", "r")
    decoder.format, decoder.layout, decoder.sample_rate = "s16", "mono", CALL_RATE
    time_base = fractions.Fraction(1, CALL_RATE)
    out = bytearray()
    for payload in payloads:
        packet = Packet(payload)
        packet.pts, packet.time_base = 0, time_base
        for frame in decoder.decode(packet):
            out += frame.to_ndarray().tobytes()
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Found:
    """Where a sentence of the WAV starts in Chromium's coded audio and in the page's own PCM
    (``None``: that capture lost samples inside it)."""

    at: int
    heard: int | None


def locate(decoded: bytes, captured: bytes, plan: Layout) -> list[Found]:
    found: list[Found] = []
    for start, length in zip(plan.starts, plan.lengths, strict=True):
        reference = plan.pcm48[(start - FRAME_SAMPLES) * 2 : (start + length + FRAME_SAMPLES) * 2]
        at, heard = find(decoded, reference), find(captured, reference)
        whole = (intact(decoded, at, reference), intact(captured, heard, reference))
        fits = (match(decoded, at, reference), match(captured, heard, reference))
        coded = f"{at / CALL_RATE:6.2f} s coded (match {fits[0]:.3f}, intact {whole[0]})"
        page = f"{heard / CALL_RATE:6.2f} s page (match {fits[1]:.3f}, intact {whole[1]})"
        print(f"sentence at {start / CALL_RATE:6.2f} s found at {coded}, {page}", flush=True)
        found.append(Found(at + FRAME_SAMPLES, heard + FRAME_SAMPLES if whole[1] else None))
    return found


async def compare(
    decoded: bytes, captured: bytes, sentences: Sequence[bytes], plan: Layout
) -> dict[str, list[float]]:
    """Per sentence and lead: ms by which the turn's silence begins later than for the 24 kHz PCM,
    for Chromium's coded audio with and without the look-ahead, the page's own PCM (``capture``),
    and libopus at a browser's settings; and the coded audio against the page's PCM
    (``chromium-capture``: the encoder alone, after the browser's voice processing)."""
    from hark.bench.opus_vad import browser_round_trip, silence_start_ms
    from hark.engines.vad.silero import SileroVAD

    vad = SileroVAD()
    names = ("chromium", "aligned", "capture", "pyav-browser", "chromium-capture")
    columns: dict[str, list[float]] = {name: [] for name in names}
    for pcm, length, found in zip(sentences, plan.lengths, locate(decoded, captured, plan), strict=True):
        for lead in LEADS_MS:
            base = await silence_start_ms(vad, silence(lead) + pcm + silence(TAIL_MS), RATE)
            if base is None:
                continue
            pcm48 = _resample(silence(lead) + pcm + silence(TAIL_MS), CALL_RATE)
            heard = b"" if found.heard is None else cut(captured, found.heard, length, lead)
            inputs = {
                "chromium": cut(decoded, found.at, length, lead, delay=LOOK_AHEAD_SAMPLES),
                "aligned": cut(decoded, found.at, length, lead),
                "capture": heard,
                "pyav-browser": browser_round_trip(pcm48),
            }
            for name, audio in inputs.items():
                start_ms = await silence_start_ms(vad, audio, CALL_RATE) if audio else None
                columns[name].append(float("nan") if start_ms is None else start_ms - base)
            columns["chromium-capture"].append(columns["chromium"][-1] - columns["capture"][-1])
    return columns


PAUSE_VOICES = ("en-us", "en+f3")


def pause_phrases() -> list[tuple[int, bytes, float]]:
    """``opus_vad``'s sentence with a pause inside: ``(pause_ms, pcm, ms from its start to where
    the speech resumes)`` for each pause and voice."""
    from hark.bench.audio import espeak
    from hark.bench.opus_vad import PAUSE_PARTS, PAUSES_MS

    phrases = []
    for voice in PAUSE_VOICES:
        first, second = (espeak(part, voice=voice) or b"" for part in PAUSE_PARTS)
        for pause in PAUSES_MS:
            resumes = len(first) / 2 / RATE * 1000 + pause
            phrases.append((pause, first + silence(pause) + second, resumes))
    return phrases


async def pauses(
    decoded: bytes, captured: bytes, phrases: Sequence[tuple[int, bytes, float]], plan: Layout
) -> dict[str, list[float]]:
    """Per pause: 1.0 for each lead at which the turn ended at the pause, else 0.0; as PCM,
    Chromium's coded audio with and without ``webrtc.codec_tail_ms`` (32), the page's PCM."""
    from hark.bench.opus_vad import silence_start_ms
    from hark.engines.vad.silero import SileroVAD
    from hark.pipeline.turns import TurnConfig

    vad, tail = SileroVAD(), TurnConfig(coded_tail_ms=32)
    columns: dict[str, list[float]] = {}
    for (pause, pcm, resumes), length, found in zip(
        phrases, plan.lengths, locate(decoded, captured, plan), strict=True
    ):
        for lead in LEADS_MS:
            coded = cut(decoded, found.at, length, lead, delay=LOOK_AHEAD_SAMPLES)
            heard = b"" if found.heard is None else cut(captured, found.heard, length, lead)
            inputs = {
                "pcm24": (silence(lead) + pcm + silence(TAIL_MS), RATE, None),
                "chromium": (coded, CALL_RATE, None),
                "chromium+tail": (coded, CALL_RATE, tail),
                "capture": (heard, CALL_RATE, None),
            }
            for name, (audio, rate, turn) in inputs.items():
                if not audio:
                    continue
                start = await silence_start_ms(vad, audio, rate, turn)
                ended = start is not None and start < lead + resumes
                columns.setdefault(f"{pause} ms {name}", []).append(float(ended))
    return columns


def _ended(values: Sequence[float]) -> str:
    return f"ended at the pause {int(sum(values))} of {len(values)}"


def _run(
    plan: Layout,
    analyse: Callable[[bytes, bytes], Coroutine[Any, Any, dict[str, list[float]]]],
    *,
    runs: int,
    modes: Sequence[str],
    show: Callable[[Sequence[float]], str],
) -> None:
    from hark.bench.server import HarkServer, scripted_env

    totals: dict[str, list[float]] = {}
    seconds = len(plan.pcm48) / 2 / CALL_RATE * 1.6 + 3
    with tempfile.TemporaryDirectory(prefix="hark-browser-tail-") as folder:
        wav = Path(folder) / "speech.wav"
        write_wav(wav, plan.pcm48)
        with HarkServer(scripted_env()) as server:
            for run in range(runs):
                for mode in modes:
                    load = Path("/proc/loadavg").read_text().split()[0]
                    recording = record(server.base_url, wav, seconds, mode)
                    payloads, missing = ordered_payloads(recording.frames)
                    print(f"run {run + 1} {mode}: {len(payloads)} frames ({describe(payloads)}),", end=" ")
                    print(f"{missing} missing, load {load}; answer: {recording.answer}", flush=True)
                    columns = asyncio.run(analyse(decode(payloads), webm_pcm(recording.captured)))
                    for name, values in columns.items():
                        print(f"  {mode:5s} {name:16s} {show(values)}", flush=True)
                        totals.setdefault(f"{mode} {name}", []).extend(values)
    print("all runs:")
    for name, values in totals.items():
        print(f"{name:22s} {show(values)}")


if __name__ == "__main__":
    import argparse

    from hark.bench.opus_vad import _questions

    parser = argparse.ArgumentParser(prog="python -m hark.bench.browser_tail")
    parser.add_argument("--runs", type=int, default=3, help="calls per processing mode")
    parser.add_argument("--processing", choices=("raw", "voice", "both"), default="both")
    parser.add_argument("--pauses", action="store_true", help="a pause inside a sentence instead")
    options = parser.parse_args()
    modes = ("raw", "voice") if options.processing == "both" else (options.processing,)
    if options.pauses:
        phrases = pause_phrases()
        plan = layout([pcm for _, pcm, _ in phrases])
        _run(
            plan,
            lambda coded, heard: pauses(coded, heard, phrases, plan),
            runs=options.runs,
            modes=modes,
            show=_ended,
        )
    else:
        spoken = [pcm for _, pcm in _questions(True)]
        plan = layout(spoken)
        _run(
            plan,
            lambda coded, heard: compare(coded, heard, spoken, plan),
            runs=options.runs,
            modes=modes,
            show=summary,
        )
