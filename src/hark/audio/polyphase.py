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
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from hark.audio.pcm import FROM_INT16, PCM16, AudioFormatError
from hark.engines.base import Float32Array

Int16Array = NDArray[np.int16]

_FLOAT_BYTES = 4
_FLOAT32 = np.dtype(np.float32)
SCRATCH_SAMPLES = 4096
"""Input samples per call the kept buffer holds before it grows (a 20-40 ms frame is 480-960)."""

DEFAULT_TAPS = 16
KAISER_BETA = 6.0
CUTOFF = 0.9
"""Pass band edge as a fraction of the lower Nyquist frequency."""
SMALL_UP = 8
"""Up to this many phases, outputs go by blocks of ``up`` (one strided product for all); beyond,
they are gathered one by one."""


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
    ``floor(n × in_rate / out_rate)`` has arrived.

    With ``pcm16=True`` it takes 16-bit PCM instead (bytes, little-endian, or an int16 array) and
    puts out the same float32 as ``process(pcm16_to_float(pcm))``: the filter is scaled by 2⁻¹⁵
    (exact, a power of two) and the input goes into the filter's buffer as it is, so the frame is
    not converted to a float array of its own first."""

    def __init__(self, in_rate: int, out_rate: int, *, taps: int | None = None, pcm16: bool = False) -> None:
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
        self.pcm16 = pcm16
        scale = FROM_INT16 if pcm16 else np.float32(1.0)
        # Reversed in j so that a sliding window (oldest sample first) lines up with it.
        self._bank = polyphase_bank(self._up, self._down, taps)[:, ::-1] * scale
        # Every ``up`` outputs take ``down`` more inputs: output b*up + r has its newest input at
        # b*down + r*down//up. One row of ``width`` inputs per block of ``up`` outputs, times
        # ``_block`` (each phase's taps at its offset), gives the whole block in one product.
        width = taps + (self._up - 1) * self._down // self._up if self._up <= SMALL_UP else 0
        self._block = np.zeros((self._up if width else 0, width), dtype=np.float32)
        for r in range(self._block.shape[0]):
            offset = r * self._down // self._up
            self._block[r, offset : offset + taps] = self._bank[r * self._down % self._up]
        self._block_t = np.ascontiguousarray(self._block.T)
        self._row_strides = (self._down * _FLOAT_BYTES, _FLOAT_BYTES)
        self._width = width
        # Kept: the last taps - 1 inputs, and ``down`` more, so that a block starting before
        # this call's first output still finds its inputs; ``down`` samples past the input pad
        # the buffer's end for the block holding the last output (its outputs beyond that are
        # not returned).
        self._keep = taps - 1 + self._down
        # One buffer kept from call to call: the kept inputs from ``_start``, then each call's
        # input, then the ``down`` of padding. Filled in place rather than built anew by a
        # concatenate per call (docs/benchmarks.md, entry 41); the kept inputs move back to
        # the start only when the next input would not fit after them.
        self._buffer = np.zeros(self._keep + SCRATCH_SAMPLES + self._down, dtype=np.float32)
        self._start = 0
        self._consumed = 0
        """Input samples seen so far."""
        self._produced = 0
        """Output samples emitted so far."""

    def output_for(self, samples: int) -> int:
        """How many samples :meth:`process` would put out for ``samples`` more input samples."""
        if self.in_rate == self.out_rate:
            return samples
        consumed = self._consumed + samples
        return max(0, (consumed * self._up + self._down - 1) // self._down - self._produced)

    def process(self, audio: Float32Array | Int16Array | bytes) -> Float32Array:
        """The output samples that ``audio`` completes: float32 ``audio`` (or, with ``pcm16``,
        16-bit PCM)."""
        samples = self._samples(audio)
        if self.in_rate == self.out_rate:
            return samples * FROM_INT16 if self.pcm16 else samples
        if samples.size == 0:
            return np.zeros(0, dtype=np.float32)
        return self._filter(samples)

    def _samples(self, audio: Float32Array | Int16Array | bytes) -> NDArray[Any]:
        if not self.pcm16:
            if isinstance(audio, bytes):
                raise TypeError("PCM16 bytes given to a float32 resampler (CausalResampler(pcm16=True))")
            return np.asarray(audio, dtype=np.float32)
        if isinstance(audio, bytes | bytearray | memoryview):
            return np.frombuffer(audio, PCM16)
        if audio.dtype != np.int16:
            raise TypeError(f"a pcm16 resampler takes int16 samples, not {audio.dtype}")
        return audio

    def _filter(self, audio: NDArray[Any]) -> Float32Array:
        first = self._produced
        keep, down = self._keep, self._down
        consumed = self._consumed + audio.size
        # Output n needs input floor(n * down / up), which exists while it is < consumed.
        last = (consumed * self._up + down - 1) // down
        # buffer[start + k] holds input sample (self._consumed - keep + k), then ``down`` more;
        # float32, so int16 input is converted as it is copied in. The kept inputs move to the
        # buffer's start only when this input would not fit after them; an input too long for
        # the kept buffer gets one of its own, used once.
        buffer, start = self._buffer, self._start
        end = start + keep + audio.size
        if end + down > buffer.size:
            if keep + audio.size + down > buffer.size:
                buffer = np.zeros(keep + audio.size + down, dtype=np.float32)
            buffer[:keep] = self._buffer[start : start + keep]  # numpy copies overlaps correctly
            start, end = 0, keep + audio.size
        buffer[start + keep : end] = audio
        if not self.pcm16:
            # The ``down`` past the input meet only zero coefficients of the outputs returned
            # (the rest of the last block is cut off), and 0 × a finite sample adds nothing: PCM16
            # leaves finite samples there. Float input may have left an inf or a NaN.
            buffer[end : end + down] = 0.0
        base = self._consumed - keep - start
        self._consumed = consumed
        self._produced = last
        if last <= first:
            result: Float32Array = np.zeros(0, dtype=np.float32)
        elif self._up <= SMALL_UP:
            first_block = first // self._up
            blocks = -(-last // self._up) - first_block
            oldest = first_block * down - (self._taps - 1) - base
            # Positional arguments: ndarray's keyword parsing cost more than the view (~1 µs).
            offset = oldest * _FLOAT_BYTES
            rows = np.ndarray((blocks, self._width), _FLOAT32, buffer, offset, self._row_strides)
            skip = first - first_block * self._up
            result = np.dot(rows, self._block_t).reshape(-1)[skip : skip + last - first]
        else:
            result = self._gathered(buffer, base, first, last)
        # The newest ``keep`` inputs are where the next call's input goes after; the result
        # above is an array of its own.
        if buffer is self._buffer:
            self._start = end - keep
        else:
            self._buffer[:keep] = buffer[end - keep : end]
            self._start = 0
        return result

    def _gathered(self, buffer: Float32Array, base: int, first: int, last: int) -> Float32Array:
        out = np.empty(last - first, dtype=np.float32)
        outputs = np.arange(first, last, dtype=np.int64) * self._down
        oldest_all = outputs // self._up - base - (self._taps - 1)
        rows = sliding_window_view(buffer, self._taps)[oldest_all]
        out[:] = np.einsum("nt,nt->n", rows, self._bank[outputs % self._up])
        return out
