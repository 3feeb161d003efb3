"""Incoming Wyoming audio: validated, mixed to mono and resampled to the STT's rate, bounded.

Pure and synchronous (soxr on a chunk of a few hundred milliseconds takes microseconds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hark.audio import Resampler
from hark.engines.base import Float32Array
from hark.transports.wyoming.errors import WyomingError

MIN_RATE = 8_000
MAX_RATE = 96_000
MAX_CHANNELS = 2
WIDTH = 2
"""Only 16-bit samples: what every Home Assistant satellite and microphone sends."""


@dataclass(frozen=True, slots=True)
class AudioFormat:
    rate: int
    width: int
    channels: int

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> AudioFormat:
        rate, width, channels = (data.get(key) for key in ("rate", "width", "channels"))
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (rate, width, channels)):
            raise WyomingError("invalid_audio", "rate, width and channels must be integers")
        assert isinstance(rate, int) and isinstance(width, int) and isinstance(channels, int)
        if not MIN_RATE <= rate <= MAX_RATE:
            raise WyomingError(
                "unsupported_audio_format", f"sample rate must be {MIN_RATE} to {MAX_RATE} Hz, not {rate}"
            )
        if width != WIDTH:
            raise WyomingError("unsupported_audio_format", f"sample width must be {WIDTH} bytes, not {width}")
        if not 1 <= channels <= MAX_CHANNELS:
            raise WyomingError("unsupported_audio_format", f"channels must be 1 or 2, not {channels}")
        return cls(rate, width, channels)

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


class AudioInput:
    """One utterance's audio, kept at ``out_rate`` as float32, at most ``max_s`` seconds."""

    def __init__(self, fmt: AudioFormat, out_rate: int, max_s: float) -> None:
        self.format = fmt
        self._resampler = Resampler(fmt.rate, out_rate)
        self._max_frames = int(max_s * fmt.rate)
        self._frames_in = 0
        self._pieces: list[Float32Array] = []
        self.out_rate = out_rate

    @property
    def seconds(self) -> float:
        return self._frames_in / self.format.rate

    def push(self, fmt: AudioFormat, pcm: bytes) -> None:
        if fmt != self.format:
            raise WyomingError("invalid_audio", "audio-chunk format differs from its audio-start")
        if len(pcm) % fmt.frame_bytes:
            raise WyomingError("invalid_audio", "audio-chunk payload is not whole 16-bit frames")
        frames = len(pcm) // fmt.frame_bytes
        if self._frames_in + frames > self._max_frames:
            raise WyomingError(
                "max_length_reached", f"audio exceeds {self._max_frames / fmt.rate:g} s for one transcription"
            )
        self._frames_in += frames
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        if fmt.channels > 1:
            samples = samples.reshape(-1, fmt.channels).mean(axis=1, dtype=np.float32)
        self._pieces.append(self._resampler.process(samples))

    def audio(self, *, last: bool = False) -> Float32Array:
        """Everything so far; ``last`` flushes the resampler (call it once, at the end)."""
        if last:
            self._pieces.append(self._resampler.process(np.zeros(0, dtype=np.float32), last=True))
        if not self._pieces:
            return np.zeros(0, dtype=np.float32)
        joined = np.concatenate(self._pieces)
        self._pieces = [joined]
        return joined
