"""Decoding uploaded audio files of any container PyAV knows, bounded by duration."""

from __future__ import annotations

import io

import numpy as np

from hark.audio.pcm import AudioFormatError
from hark.engines.base import Float32Array


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
