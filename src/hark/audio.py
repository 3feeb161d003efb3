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


class AudioTooLong(AudioFormatError):
    """The file decodes to more audio than allowed (it may be only a few kilobytes: silence and
    long runs compress almost to nothing)."""

    def __init__(self, max_seconds: float) -> None:
        super().__init__(f"the audio is longer than the {max_seconds:g} s allowed")
        self.max_seconds = max_seconds


MAX_INPUT_RATE = 384_000
"""Sample rates above this are refused before decoding (no real recording uses them)."""
MAX_INPUT_CHANNELS = 32


def decode_audio_file(data: bytes, rate: int, *, max_seconds: float | None = None) -> Float32Array:
    """Decode any container/codec PyAV knows to mono float32 at ``rate``. Blocking.

    ``max_seconds`` bounds what the file may decode to, not only its bytes (AudioTooLong): a
    duration the container declares beyond it is refused at once; then the packets' own
    durations are added up without decoding (about 6× cheaper than decoding); and decoding
    stops as soon as the frames decoded so far pass it, so a lying or absent header cannot make
    it buffer more than ``max_seconds`` of audio."""
    import av

    if not data:
        raise AudioFormatError("the audio file is empty")
    limit = None if max_seconds is None else int((max_seconds + 1.0) * rate)
    decoded_s = 0.0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioFormatError("the file has no audio stream")
            stream = container.streams.audio[0]
            # A damaged header can leave the stream without a codec context: PyAV then raises
            # AttributeError for rate and channels, so read them as "not declared".
            stream_rate = getattr(stream, "rate", 0) or 0
            channels = getattr(stream, "channels", 0) or 0
            if stream_rate and (stream_rate > MAX_INPUT_RATE or channels > MAX_INPUT_CHANNELS):
                raise AudioFormatError(f"unsupported audio: {stream_rate} Hz, {channels} channels")
            if max_seconds is not None and declared_seconds(container) > max_seconds:
                raise AudioTooLong(max_seconds)
        if max_seconds is not None:
            _check_packet_durations(data, max_seconds)
        with av.open(io.BytesIO(data), mode="r") as container:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            pieces: list[Float32Array] = []
            total = 0
            for frame in container.decode(audio=0):
                decoded_s += frame.samples / (frame.sample_rate or rate)
                if max_seconds is not None and decoded_s > max_seconds + 1.0:
                    raise AudioTooLong(max_seconds)
                for out in resampler.resample(frame):
                    piece = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    total += piece.size
                    pieces.append(piece)
                if limit is not None and total > limit:
                    raise AudioTooLong(max_seconds or 0.0)
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    except av.error.FFmpegError as exc:
        raise AudioFormatError(
            f"cannot decode the audio file: {exc.strerror or type(exc).__name__}"
        ) from None
    if not pieces:
        raise AudioFormatError("the audio file holds no samples")
    audio = np.concatenate(pieces)
    if limit is not None and audio.size > limit:
        raise AudioTooLong(max_seconds or 0.0)
    return audio


def _check_packet_durations(data: bytes, max_seconds: float) -> None:
    """Raise AudioTooLong when the first audio stream's packets last longer than allowed.
    Packets without a duration count as nothing (decoding still counts their samples)."""
    import av

    total = 0.0
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        time_base = stream.time_base
        if time_base is None:
            return
        for packet in container.demux(stream):
            if packet.duration:
                total += float(packet.duration * time_base)
                if total > max_seconds + 1.0:
                    raise AudioTooLong(max_seconds)


def declared_seconds(container: object) -> float:
    """The duration the container or its first audio stream declares; 0.0 when it declares none."""
    seconds = 0.0
    duration = getattr(container, "duration", None)  # in av.time_base (microseconds)
    if duration:
        seconds = duration / 1_000_000
    streams = getattr(container, "streams", None)
    audio = streams.audio[0] if streams is not None and streams.audio else None
    if audio is not None and audio.duration and audio.time_base:
        seconds = max(seconds, float(audio.duration * audio.time_base))
    return seconds


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
