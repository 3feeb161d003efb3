"""PCM16 bytes: validation, conversion to and from float32, fixed-size chunks."""

from __future__ import annotations

import base64
import binascii

import numpy as np

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


PCM16 = np.dtype("<i2")
FROM_INT16 = np.float32(1.0 / _INT16_SCALE)


def pcm16_to_float(pcm: bytes) -> Float32Array:
    # One multiply by 2**-15 in float32: the same values as converting and dividing, one numpy
    # call less (it runs for every frame of every session).
    result: Float32Array = np.frombuffer(pcm, dtype=PCM16) * FROM_INT16
    return result


def float_to_pcm16(audio: Float32Array) -> bytes:
    # The inverse of pcm16_to_float: scale by 32768 and round, so int16 -> float -> int16 is exact.
    return bytes(np.clip(np.rint(audio * _INT16_SCALE), -32768, 32767).astype("<i2").tobytes())


def pcm16_duration_ms(n_bytes: int, sample_rate: int) -> float:
    return n_bytes / 2 / sample_rate * 1000.0


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
