"""Kaldi-style log mel filterbank features, as ``torchaudio.compliance.kaldi.fbank`` computes
them with its defaults (which the CAM++ speaker model was trained on).

25 ms frames every 10 ms without padding at the edges (``snip_edges``), DC offset removed,
pre-emphasis 0.97, the Povey window (Hann to the power 0.85), zero-padded to 512 samples, power
spectrum, triangular filters equally spaced on the mel scale ``1127 ln(1 + f/700)`` from 20 Hz
to the Nyquist frequency, natural log floored at float32 epsilon. No dither.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

RATE = 16_000
FRAME = 400
SHIFT = 160
FFT = 512
BINS = 80
LOW_HZ = 20.0
PREEMPHASIS = 0.97
FLOOR = float(np.finfo(np.float32).eps)


def _mel(hz: npt.NDArray[np.floating] | float) -> npt.NDArray[np.float64]:
    return np.asarray(1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0))


@functools.cache
def mel_banks(bins: int = BINS, rate: int = RATE) -> npt.NDArray[np.float64]:
    """(bins, FFT // 2 + 1) filter weights; the Nyquist column is zero, as in Kaldi."""
    low, high = _mel(LOW_HZ), _mel(rate / 2)
    delta = (high - low) / (bins + 1)
    left = low + np.arange(bins)[:, None] * delta
    centre, right = left + delta, left + 2 * delta
    mel = _mel(rate / FFT * np.arange(FFT // 2))[None, :]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    weights = np.maximum(0.0, np.minimum(up, down))
    return np.concatenate([weights, np.zeros((bins, 1))], axis=1)


@functools.cache
def povey_window() -> npt.NDArray[np.float64]:
    n = np.arange(FRAME)
    return np.asarray((0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME - 1))) ** 0.85)


def fbank(audio: npt.NDArray[np.floating], *, bins: int = BINS) -> npt.NDArray[np.float32]:
    """(frames, bins) log mel energies of 16 kHz audio in [-1, 1]; zero frames when shorter
    than one 25 ms frame."""
    samples = np.asarray(audio, dtype=np.float64).reshape(-1)
    if samples.size < FRAME:
        return np.zeros((0, bins), dtype=np.float32)
    count = 1 + (samples.size - FRAME) // SHIFT
    frames = np.lib.stride_tricks.sliding_window_view(samples, FRAME)[::SHIFT][:count].copy()
    frames -= frames.mean(axis=1, keepdims=True)
    previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = (frames - PREEMPHASIS * previous) * povey_window()
    power = np.abs(np.fft.rfft(frames, n=FFT, axis=1)) ** 2
    energies = power @ mel_banks(bins).T
    return np.log(np.maximum(energies, FLOOR)).astype(np.float32)


def normalised_fbank(audio: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """:func:`fbank` minus its mean over the clip (per bin): the model's input."""
    features = fbank(audio)
    if features.shape[0]:
        features -= features.mean(axis=0, keepdims=True)
    return features
