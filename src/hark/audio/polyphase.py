"""A streaming resampler that holds nothing back: a causal polyphase FIR.

soxr's filters look ahead, so the last few input samples of every chunk wait for the next one.
On the listening path that delay decides when the VAD chunk ending a turn is complete, and so
when the turn can end. Here each output sample needs only inputs that have already arrived:
feeding N input samples yields every output sample up to the same instant, and the price is a
group delay of ``taps / 2`` input samples (0.7 ms at 24 kHz), paid once, inside
the audio rather than at the chunk boundaries.

Quality: a Kaiser-windowed sinc with ``taps`` coefficients per phase, cut off just below the
lower Nyquist frequency: clean enough for VAD and speech recognition, not meant for music.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hark.audio.pcm import AudioFormatError
from hark.engines.base import Float32Array

_FLOAT_BYTES = 4

DEFAULT_TAPS = 16
KAISER_BETA = 6.0
CUTOFF = 0.9
"""Pass band edge as a fraction of the lower Nyquist frequency."""
SMALL_UP = 8
"""Up to this many phases, each phase is one strided product; beyond, outputs are gathered."""


def polyphase_bank(up: int, down: int, taps: int) -> Float32Array:
    """``bank[p, j]``: the coefficient for input ``x[i - j]`` of an output at phase ``p``.

    The prototype low-pass runs at ``up × input rate`` and is split into ``up`` phases of ``taps``
    coefficients each, scaled by ``up`` to keep unity gain through the zero-stuffing.
    """
    length = up * taps
    cutoff = CUTOFF / max(up, down)  # cycles per sample at the upsampled rate, times two
    n = np.arange(length) - (length - 1) / 2
    prototype = cutoff * np.sinc(cutoff * n) * np.kaiser(length, KAISER_BETA)
    prototype *= up / prototype.sum()
    return np.ascontiguousarray(prototype.reshape(taps, up).T, dtype=np.float32)


class CausalResampler:
    """Mono float32 in, mono float32 out; output sample ``n`` is emitted as soon as input sample
    ``floor(n × in_rate / out_rate)`` has arrived."""

    def __init__(self, in_rate: int, out_rate: int, *, taps: int | None = None) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise AudioFormatError(f"invalid sample rate {in_rate} -> {out_rate}")
        common = gcd(in_rate, out_rate)
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._up = out_rate // common
        self._down = in_rate // common
        if taps is None:
            # Decimating, the transition band is narrower in input samples: widen the window.
            taps = DEFAULT_TAPS * max(1, round(self._down / self._up))
        if taps < 2:
            raise ValueError("taps must be at least 2")
        self._taps = taps
        # Reversed in j so that a sliding window (oldest sample first) lines up with it.
        self._bank = polyphase_bank(self._up, self._down, taps)[:, ::-1].copy()
        self._history = np.zeros(taps - 1, dtype=np.float32)
        self._consumed = 0
        """Input samples seen so far."""
        self._produced = 0
        """Output samples emitted so far."""

    def process(self, audio: Float32Array) -> Float32Array:
        if self.in_rate == self.out_rate:
            return audio
        audio = np.asarray(audio, dtype=np.float32)
        if audio.size == 0:
            return audio
        first = self._produced
        consumed = self._consumed + audio.size
        # Output n needs input floor(n * down / up), which exists while it is < consumed.
        last = (consumed * self._up + self._down - 1) // self._down
        buffer = np.concatenate((self._history, audio))  # contiguous float32: viewed below
        # buffer[k] holds input sample (self._consumed - (taps - 1) + k).
        base = self._consumed - (self._taps - 1)
        self._history = buffer[buffer.size - (self._taps - 1) :].copy()
        self._consumed = consumed
        self._produced = last
        if last <= first:
            return np.zeros(0, dtype=np.float32)
        count = last - first
        out = np.empty(count, dtype=np.float32)
        if self._up <= SMALL_UP:
            # Outputs n ≡ r (mod up) share a phase, and their newest inputs step by ``down``: per
            # phase one strided view of the buffer (rows of ``taps`` samples) and one product.
            for r in range(min(self._up, count)):
                n = first + r
                oldest = n * self._down // self._up - base - (self._taps - 1)
                rows = np.ndarray(
                    (len(range(r, count, self._up)), self._taps),
                    dtype=np.float32,
                    buffer=buffer,
                    offset=oldest * _FLOAT_BYTES,
                    strides=(self._down * _FLOAT_BYTES, _FLOAT_BYTES),
                )
                out[r :: self._up] = rows @ self._bank[n * self._down % self._up]
            return out
        outputs = np.arange(first, last, dtype=np.int64) * self._down
        oldest_all = outputs // self._up - base - (self._taps - 1)
        rows = sliding_window_view(buffer, self._taps)[oldest_all]
        out[:] = np.einsum("nt,nt->n", rows, self._bank[outputs % self._up])
        return out
