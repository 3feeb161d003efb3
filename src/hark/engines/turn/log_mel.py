"""Whisper's log-mel spectrogram in numpy: 16 kHz, 25 ms Hann windows every 10 ms, 80 mel bands
(Slaney scale and area normalisation), log10 clamped to 8 decades below the peak, scaled to
about [-1, 1]. Smart Turn was trained on these features of an 8 s window."""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Slaney: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
    linear = hz * 3.0 / 200.0
    log = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(hz >= 1000.0, log, linear)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear = mel * 200.0 / 3.0
    log = 1000.0 * np.exp((mel - 15.0) * (np.log(6.4) / 27.0))
    return np.where(mel >= 15.0, log, linear)


@functools.cache
def mel_filters() -> npt.NDArray[np.float64]:
    """(N_MELS, N_FFT // 2 + 1) triangular filters over the power spectrum's bins."""
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(np.array(SAMPLE_RATE / 2.0))), N_MELS + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (upper - lower))  # equal area per band


@functools.cache
def _window() -> npt.NDArray[np.float64]:
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)  # periodic Hann


def log_mel(audio: npt.NDArray[np.float32], *, normalise: bool = True) -> npt.NDArray[np.float32]:
    """Features of ``audio`` (16 kHz mono): (N_MELS, len(audio) // HOP) float32.

    With ``normalise`` the waveform is first scaled to zero mean and unit variance, as Smart
    Turn's training features were."""
    x = np.asarray(audio, dtype=np.float32)
    if normalise:
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")  # centred frames
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _window(), axis=-1)) ** 2
    mel = mel_filters() @ power.T
    spec = np.log10(np.maximum(mel, 1e-10))[:, :-1]  # the last frame is padding only
    spec = np.maximum(spec, spec.max() - 8.0)
    features: npt.NDArray[np.float32] = ((spec + 4.0) / 4.0).astype(np.float32)
    return features
