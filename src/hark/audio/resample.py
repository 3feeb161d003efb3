"""Streaming soxr resamplers (float32 and PCM16); see polyphase.py for the causal one."""

from __future__ import annotations

import soxr

from hark.audio.pcm import AudioFormatError, float_to_pcm16, pcm16_to_float
from hark.engines.base import Float32Array


class Resampler:
    """Streaming mono resampler; passes audio through untouched when the rates match."""

    def __init__(self, in_rate: int, out_rate: int, *, quality: str = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise AudioFormatError(f"invalid sample rate {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        )

    def process(self, audio: Float32Array, *, last: bool = False) -> Float32Array:
        if self._stream is None:
            return audio
        out: Float32Array = self._stream.resample_chunk(audio, last=last)
        return out


class PCM16Resampler:
    """PCM16 bytes in, PCM16 bytes out, at another rate (for TTS output)."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._resampler = Resampler(in_rate, out_rate)
        self._passthrough = in_rate == out_rate

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        if self._passthrough:
            return pcm
        return float_to_pcm16(self._resampler.process(pcm16_to_float(pcm), last=last))
