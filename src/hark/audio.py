"""PCM helpers: decoding, validation and streaming resampling."""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
import soxr

from hark.engines.base import Float32Array

_INT16_SCALE = 32768.0


class AudioFormatError(ValueError):
    """Audio that cannot be accepted as the declared format."""


def decode_base64_pcm16(data: object, *, max_bytes: int) -> bytes:
    """Decode base64 PCM16 from a client event, refusing what is not whole 16-bit samples."""
    if not isinstance(data, str):
        raise AudioFormatError("audio must be a base64 string")
    if len(data) > max_bytes * 4 // 3 + 4:
        raise AudioFormatError(f"audio chunk exceeds {max_bytes} bytes")
    try:
        pcm = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AudioFormatError("audio is not valid base64") from exc
    if len(pcm) > max_bytes:
        raise AudioFormatError(f"audio chunk exceeds {max_bytes} bytes")
    if len(pcm) % 2:
        raise AudioFormatError("PCM16 audio must have an even number of bytes")
    return pcm


def pcm16_to_float(pcm: bytes) -> Float32Array:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / _INT16_SCALE


def float_to_pcm16(audio: Float32Array) -> bytes:
    # The inverse of pcm16_to_float: scale by 32768 and round, so int16 -> float -> int16 is exact.
    return bytes(np.clip(np.rint(audio * _INT16_SCALE), -32768, 32767).astype("<i2").tobytes())


def pcm16_duration_ms(n_bytes: int, sample_rate: int) -> float:
    return n_bytes / 2 / sample_rate * 1000.0


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


class Chunker:
    """Cuts a byte stream into fixed-size chunks, keeping the remainder for the next call."""

    def __init__(self, chunk_bytes: int) -> None:
        self.chunk_bytes = chunk_bytes
        self._pending = bytearray()

    def push(self, data: bytes) -> list[bytes]:
        self._pending += data
        n = len(self._pending) // self.chunk_bytes * self.chunk_bytes
        if n == 0:
            return []
        chunks = [bytes(self._pending[i : i + self.chunk_bytes]) for i in range(0, n, self.chunk_bytes)]
        del self._pending[:n]
        return chunks

    def flush(self) -> bytes:
        rest = bytes(self._pending)
        self._pending.clear()
        return rest


def decode_audio_file(data: bytes, rate: int) -> Float32Array:
    """Decode any container/codec PyAV knows to mono float32 at ``rate``. Blocking."""
    import av

    if not data:
        raise AudioFormatError("the audio file is empty")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioFormatError("the file has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            pieces: list[Float32Array] = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except av.error.FFmpegError as exc:
        raise AudioFormatError(
            f"cannot decode the audio file: {exc.strerror or type(exc).__name__}"
        ) from None
    if not pieces:
        raise AudioFormatError("the audio file holds no samples")
    return np.concatenate(pieces)


def _tempo_steps(speed: float) -> list[float]:
    """ffmpeg's atempo takes 0.5-2.0 per instance; chain instances for the rest."""
    steps: list[float] = []
    while speed > 2.0:
        steps.append(2.0)
        speed /= 2.0
    while speed < 0.5:
        steps.append(0.5)
        speed /= 0.5
    return [*steps, speed]


def change_speed(pcm: bytes, rate: int, speed: float) -> bytes:
    """Faster or slower speech at the same pitch (ffmpeg's atempo filter). Blocking."""
    import av

    if speed == 1.0 or not pcm:
        return pcm
    graph = av.filter.Graph()
    node = graph.add_abuffer(format="s16", sample_rate=rate, layout="mono")
    for step in _tempo_steps(speed):
        tempo = graph.add("atempo", f"{step:.6f}")
        node.link_to(tempo)
        node = tempo
    sink = graph.add("abuffersink")
    node.link_to(sink)
    graph.configure()
    frame = av.AudioFrame.from_ndarray(
        np.frombuffer(pcm, dtype="<i2").reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = rate
    graph.push(frame)
    graph.push(None)
    out = bytearray()
    while True:
        try:
            result = graph.pull()
        except (av.error.EOFError, av.error.BlockingIOError):
            break
        out += result.to_ndarray().astype("<i2").tobytes()
    return bytes(out)
