"""G.711 μ-law ↔ PCM16 by table lookup: the 8 kHz telephone audio Twilio Media Streams carry.

Both tables are built once, vectorised, from the G.711 formula (bias 0x84, clip 32635, eight
segments); converting a frame is one numpy gather. (Python's ``audioop`` did this in C but is
deprecated since 3.11 and gone in 3.13.)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BIAS = 0x84
CLIP = 32635
RATE = 8000
FRAME_MS = 20
FRAME_BYTES = RATE * FRAME_MS // 1000
"""μ-law bytes in one 20 ms frame (one byte a sample)."""


def _decode_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _encode_table() -> npt.NDArray[np.uint8]:
    """Indexed by the 16-bit pattern of a PCM16 sample (``int16.view(uint16)``)."""
    sample = np.arange(65536, dtype=np.int32)
    sample = np.where(sample >= 32768, sample - 65536, sample)  # back to signed
    sign = np.where(sample < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(sample), CLIP) + BIAS
    # The segment: position of the highest set bit of magnitude, counted from bit 7.
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code: npt.NDArray[np.uint8] = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)
    return code


DECODE = _decode_table()
ENCODE = _encode_table()


def decode(ulaw: bytes) -> bytes:
    """μ-law bytes → PCM16 little-endian, same sample count."""
    return DECODE[np.frombuffer(ulaw, dtype=np.uint8)].astype("<i2").tobytes()


def encode(pcm: bytes) -> bytes:
    """PCM16 little-endian → μ-law bytes. An odd trailing byte is ignored."""
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
    return ENCODE[samples.view(np.uint16)].tobytes()


def frames(ulaw: bytes, size: int = FRAME_BYTES) -> list[bytes]:
    """``ulaw`` cut into frames of ``size`` bytes (the last one may be shorter)."""
    return [ulaw[i : i + size] for i in range(0, len(ulaw), size)]
