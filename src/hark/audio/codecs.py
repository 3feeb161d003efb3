"""Streaming audio encoding shared by every output path: PCM16LE mono in, container bytes out.

Adding an output format touches only this module: a content type, and either a passthrough or a
(container, codec) pair for PyAV. Output is produced as audio arrives, never only at the end.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Literal, cast, get_args

import av
import numpy as np
from av.audio.stream import AudioStream

AudioFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]

CONTENT_TYPES: dict[AudioFormat, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",  # Opus in an Ogg container, as OpenAI returns it.
    "aac": "audio/aac",  # Raw ADTS stream.
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",  # Headerless PCM16LE mono at the input sample rate.
}

# format -> (PyAV container format, encoder, default bit rate; None where the codec is lossless).
_CODECS: dict[str, tuple[str, str, int | None]] = {
    "mp3": ("mp3", "libmp3lame", 64_000),
    "opus": ("ogg", "libopus", 32_000),
    "aac": ("adts", "aac", 64_000),
    "flac": ("flac", "flac", None),
}

# Hand every packet to the sink as soon as it is muxed instead of filling a 32 KiB buffer first.
_CONTAINER_OPTIONS = {"flush_packets": "1"}
# Ogg pages otherwise collect up to 1 s of packets; 100 ms pages cost ~30 bytes each (~2.4 kbit/s).
_OGG_OPTIONS = _CONTAINER_OPTIONS | {"page_duration": "100000"}

# Chunks longer than this are encoded in a worker thread (see encode_stream).
_INLINE_MAX_SECONDS = 0.1

# A streaming WAV header cannot know the final length, so both the RIFF and the data chunk sizes are
# 0xFFFFFFFF ("unknown", as in OpenAI's streamed wav). FFmpeg reads such a data chunk to end of file, and
# Python's `wave` reads all frames too, though its getnframes() reports a bogus huge count. A size of 0
# was rejected: `wave` refuses the file outright ("not a WAVE file").
_UNKNOWN_SIZE = 0xFFFFFFFF


def wav_header(sample_rate: int) -> bytes:
    """A 44-byte PCM16 mono WAV header with "unknown" sizes, for streaming."""
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    riff = struct.pack("<4sI4s", b"RIFF", _UNKNOWN_SIZE, b"WAVE")
    return riff + struct.pack("<4sI", b"fmt ", len(fmt)) + fmt + struct.pack("<4sI", b"data", _UNKNOWN_SIZE)


class _Sink:
    """Write-only, non-seekable output: muxers then never seek back to patch headers."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self._buf += data
        return len(data)

    def drain(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


def _codec_rate(codec: str, sample_rate: int) -> int:
    if codec == "libopus":
        return 48_000  # Ogg Opus decoders always output 48 kHz; encode at the native rate.
    rates = av.Codec(codec, "w").audio_rates
    if not rates or sample_rate in rates:
        return sample_rate
    higher = [r for r in rates if r >= sample_rate]
    return min(higher) if higher else max(rates)


class StreamEncoder:
    """Incremental encoder: feed PCM16LE mono with encode(), end with finish().

    Not thread-safe; calls must be sequential (they may run on any thread, one at a time).
    """

    def __init__(self, fmt: AudioFormat, sample_rate: int, *, bitrate: int | None = None) -> None:
        if fmt not in get_args(AudioFormat):
            raise ValueError(
                f"unknown audio format {fmt!r}; expected one of {', '.join(get_args(AudioFormat))}"
            )
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        if bitrate is not None and bitrate <= 0:
            raise ValueError(f"bitrate must be positive, got {bitrate}")
        self.format = fmt
        self.sample_rate = sample_rate
        self.content_type = CONTENT_TYPES[fmt]
        self._pts = 0
        self._started = False
        self._finished = False
        if fmt not in _CODECS:
            return
        container_format, codec, default_bitrate = _CODECS[fmt]
        self._sink = _Sink()
        self._container = av.open(
            self._sink,
            mode="w",
            format=container_format,
            container_options=_OGG_OPTIONS if container_format == "ogg" else _CONTAINER_OPTIONS,
        )
        # PyAV's encode() runs frames through its own AudioResampler, built for the codec's sample format,
        # rate and fixed frame size (mp3 1152/576, aac 1024, opus 960 at 48 kHz): it converts, resamples
        # (opus), buffers partial frames and, on the final flush, emits the short last frame.
        # The stubs type add_stream(str) as any kind of stream; these codec names are all audio encoders.
        self._stream = cast(
            AudioStream,
            self._container.add_stream(codec, rate=_codec_rate(codec, sample_rate), layout="mono"),
        )
        bits = bitrate or default_bitrate
        if bits:
            self._stream.codec_context.bit_rate = bits
        self._time_base = Fraction(1, sample_rate)
        # Open the codec and write the container header now rather than on the first audio: a few ms
        # that encode_stream spends while the first audio is still being synthesised.
        self._stream.codec_context.open()
        self._container.start_encoding()

    def encode(self, pcm: bytes) -> bytes:
        """Encode PCM16LE mono; returns whatever container bytes are ready (possibly b"")."""
        if self._finished:
            raise RuntimeError("encoder already finished")
        if len(pcm) % 2:
            raise ValueError("PCM16 audio must have an even number of bytes")
        if self.format == "pcm":
            return bytes(pcm)
        if self.format == "wav":
            return self._header() + pcm
        if not pcm:
            return b""
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.time_base = self._time_base
        frame.pts = self._pts
        self._pts += samples.shape[1]
        self._container.mux(self._stream.encode(frame))
        return self._sink.drain()

    def finish(self) -> bytes:
        """Flush the encoder and close the container; returns the remaining bytes. Idempotent."""
        if self._finished:
            return b""
        self._finished = True
        if self.format == "pcm":
            return b""
        if self.format == "wav":
            return self._header()  # Only non-empty when no audio was ever encoded.
        self._container.mux(self._stream.encode(None))
        self._container.close()
        return self._sink.drain()

    def _header(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return wav_header(self.sample_rate)


async def encode_stream(
    chunks: AsyncIterator[bytes], fmt: AudioFormat, sample_rate: int, *, bitrate: int | None = None
) -> AsyncIterator[bytes]:
    """Encode an async stream of PCM16LE mono chunks, yielding container bytes as soon as they exist."""
    # Measured on this host, per second of 24 kHz audio: mp3 ~5-6 ms, aac ~4-5 ms, opus ~4 ms (resampling
    # included), flac ~0.5-1 ms; asyncio.to_thread costs ~0.1 ms per call. PyAV drops the GIL inside the
    # codec, so a thread really frees the loop. Chunks up to 100 ms (~0.5 ms of work) stay inline, where
    # the hop would cost a large share of the work itself; longer ones go to a thread (a whole synthesised
    # sentence of several seconds is tens of ms of encoding: 10 s of mp3 took ~50 ms). finish() is at most
    # ~2 ms (a frame or two plus the trailer) and pcm/wav only copy bytes, so those always run inline.
    inline_max = int(_INLINE_MAX_SECONDS * sample_rate) * 2
    if fmt not in _CODECS:
        encoder = StreamEncoder(fmt, sample_rate, bitrate=bitrate)
        async for pcm in chunks:
            if out := encoder.encode(pcm):
                yield out
        if tail := encoder.finish():
            yield tail
        return
    # The codec opens in a thread while the first chunk is produced (synthesised), not after.
    opening = asyncio.ensure_future(asyncio.to_thread(StreamEncoder, fmt, sample_rate, bitrate=bitrate))
    try:
        source = aiter(chunks)
        first = await anext(source, b"")
        encoder = await opening
    finally:
        opening.cancel()  # a no-op once done; else the caller gave up, or the source failed
    # The first chunk is often a whole sentence: its first 100 ms go out before the rest is encoded
    # (the first packets need only those). The codec buffers frames either way: the same audio out.
    if len(first) > inline_max:
        if out := await asyncio.to_thread(encoder.encode, first[:inline_max]):
            yield out
        first = first[inline_max:]
    async for pcm in _then(first, source):
        if len(pcm) > inline_max:
            out = await asyncio.to_thread(encoder.encode, pcm)
        else:
            out = encoder.encode(pcm)
        if out:
            yield out
    if tail := encoder.finish():
        yield tail


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
