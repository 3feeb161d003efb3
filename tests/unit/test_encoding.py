"""Tests for the streaming encoding stage (hark.audio.codecs)."""

from __future__ import annotations

import gc
import io
import threading
import time
import wave
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast, get_args

import av
import numpy as np
import pytest

from hark.audio.codecs import CONTENT_TYPES, AudioFormat, StreamEncoder, encode_stream, wav_header

RATE = 24_000
CHUNK_BYTES = RATE * 40 // 1000 * 2  # 40 ms of PCM16 mono
FORMATS: tuple[AudioFormat, ...] = get_args(AudioFormat)

# Decoded length beyond the 2 s fed in, as (least, most) extra samples at 24 kHz, from how each codec
# and container works (measured values in brackets):
# - pcm, wav, flac: lossless and sample-exact [0].
# - opus: Ogg Opus carries the encoder pre-skip in its header and the true end in the last page's
#   granule position, and decoders trim both [0].
# - aac: ADTS has nowhere to signal the encoder's 1024-sample priming or the padding of the last
#   1024-sample frame, so decoders play both: between 1 and 2 frames extra [1152 samples, +48 ms].
# - mp3: gapless info (encoder delay/padding) lives in the LAME/Xing tag, which the muxer can only fill
#   in by seeking back at the end, impossible on a stream. Decoders play LAME's 1105-sample delay
#   (576 + 529) plus the padding of the last 576-sample frame (MPEG-2 layer III at 24 kHz):
#   between 1105 and 1105 + 576 extra [1536 samples, +64 ms, a little over the nominal ±60 ms].
EXTRA_SAMPLES: dict[AudioFormat, tuple[int, int]] = {
    "pcm": (0, 0),
    "wav": (0, 0),
    "flac": (0, 0),
    "opus": (0, 0),
    "aac": (1024, 2048),
    "mp3": (1105, 1105 + 576),
}
DECODED_RATE: dict[AudioFormat, int] = {fmt: RATE for fmt in FORMATS} | {"opus": 48_000}


def sine_pcm(seconds: float, rate: int = RATE, frequency: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * 32767 * np.sin(2 * np.pi * frequency * t)).astype("<i2").tobytes()


def chunks_of(pcm: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def peak_frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[int(np.argmax(spectrum))])


def decode(data: bytes, fmt: AudioFormat, pcm_rate: int = RATE) -> tuple[np.ndarray, int]:
    """Mono float samples and their rate; containers are probed, not told their format."""
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768, pcm_rate
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        assert stream.channels == 1
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        rate = stream.rate
    samples = np.concatenate(frames)
    if samples.dtype.kind == "i":
        return samples.astype(np.float64) / float(2 ** (8 * samples.dtype.itemsize - 1)), rate
    return samples.astype(np.float64), rate


def encode_chunked(fmt: AudioFormat, pcm: bytes, rate: int = RATE) -> tuple[bytes, int]:
    """All output, and how many bytes of it had come out once 1 s of audio was fed."""
    encoder = StreamEncoder(fmt, rate)
    out = bytearray()
    fed = 0
    after_one_second = -1
    for chunk in chunks_of(pcm, rate * 40 // 1000 * 2):
        out += encoder.encode(chunk)
        fed += len(chunk)
        if after_one_second < 0 and fed >= rate * 2:
            after_one_second = len(out)
    out += encoder.finish()
    return bytes(out), after_one_second


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_duration_rate_and_pitch(fmt: AudioFormat) -> None:
    data, _ = encode_chunked(fmt, sine_pcm(2.0))
    samples, rate = decode(data, fmt)

    assert rate == DECODED_RATE[fmt]
    least, most = EXTRA_SAMPLES[fmt]
    extra_s = len(samples) / rate - 2.0
    # 1 ms slack for rounding between rates (opus decodes at 48 kHz).
    assert least / RATE - 0.001 <= extra_s <= most / RATE + 0.001, f"{fmt}: {extra_s * 1000:+.1f} ms"
    assert abs(peak_frequency(samples, rate) - 440.0) <= 5.0
    assert np.max(np.abs(samples)) == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav"])
@pytest.mark.parametrize("rate", [22_050, 16_000, 23_000])
def test_other_input_rates(fmt: AudioFormat, rate: int) -> None:
    # 22.05 kHz is what many Piper voices produce; 23 kHz is native to no codec here, so mp3/aac
    # encode it at the next supported rate up (24 kHz) and opus always at 48 kHz.
    data, _ = encode_chunked(fmt, sine_pcm(1.0, rate), rate)
    samples, decoded_rate = decode(data, fmt)
    assert decoded_rate >= rate
    assert 0.99 <= len(samples) / decoded_rate <= 1.1
    assert abs(peak_frequency(samples, decoded_rate) - 440.0) <= 5.0


def test_pcm_is_passthrough() -> None:
    pcm = sine_pcm(0.5)
    data, _ = encode_chunked("pcm", pcm)
    assert data == pcm


def test_wav_streaming_header_decodes_with_wave_and_ffmpeg() -> None:
    pcm = sine_pcm(2.0)
    data, _ = encode_chunked("wav", pcm)
    assert data[:44] == wav_header(RATE)
    assert data[4:8] == data[40:44] == b"\xff\xff\xff\xff"  # RIFF and data sizes "unknown"
    assert data[44:] == pcm

    with wave.open(io.BytesIO(data)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (1, 2, RATE)
        # getnframes() reports the placeholder size, but reading stops at the real end.
        assert reader.readframes(10 * RATE) == pcm

    samples, rate = decode(data, "wav")  # FFmpeg's wav demuxer reads the data chunk to end of file.
    assert rate == RATE
    assert len(samples) == len(pcm) // 2


def test_wav_without_audio_is_just_the_header() -> None:
    assert StreamEncoder("wav", RATE).finish() == wav_header(RATE)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac"])
def test_empty_stream_finishes_cleanly(fmt: AudioFormat) -> None:
    encoder = StreamEncoder(fmt, RATE)
    assert encoder.encode(b"") == b""
    encoder.finish()


# -- streaming --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_output_streams_before_finish(fmt: AudioFormat) -> None:
    # Not just headers: a real share of the audio is out after 1 s of 2. flac streams too (the
    # STREAMINFO it cannot patch on a stream says "length unknown").
    data, after_one_second = encode_chunked(fmt, sine_pcm(2.0))
    assert after_one_second > 0.25 * len(data), f"{fmt}: {after_one_second} of {len(data)} bytes"


async def test_encode_stream_yields_before_input_ends() -> None:
    pcm = sine_pcm(3.0)
    pulled = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal pulled
        # Small chunks (inline path), then one 1.5 s chunk (worker-thread path).
        for chunk in [*chunks_of(pcm[: RATE * 3]), pcm[RATE * 3 :]]:
            pulled += 1
            yield chunk

    total_chunks = len(chunks_of(pcm[: RATE * 3])) + 1
    out: list[bytes] = []
    first_output_at = 0
    async for piece in encode_stream(source(), "mp3", RATE):
        assert piece
        if not out:
            first_output_at = pulled
        out.append(piece)

    assert first_output_at < total_chunks // 2
    samples, rate = decode(b"".join(out), "mp3")
    assert 3.0 <= len(samples) / rate <= 3.0 + EXTRA_SAMPLES["mp3"][1] / RATE + 0.001
    assert abs(peak_frequency(samples, rate) - 440.0) <= 5.0


@pytest.mark.parametrize(
    ("fmt", "chunk_seconds", "off_loop"),
    [("mp3", 0.04, False), ("mp3", 0.1, False), ("mp3", 0.5, True), ("flac", 2.0, True), ("pcm", 2.0, False)],
)
async def test_long_chunks_are_encoded_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, fmt: AudioFormat, chunk_seconds: float, off_loop: bool
) -> None:
    threads: list[int] = []
    original = StreamEncoder.encode

    def recording_encode(self: StreamEncoder, pcm: bytes) -> bytes:
        threads.append(threading.get_ident())
        return original(self, pcm)

    monkeypatch.setattr(StreamEncoder, "encode", recording_encode)

    async def source() -> AsyncIterator[bytes]:
        yield sine_pcm(chunk_seconds)

    assert [piece async for piece in encode_stream(source(), fmt, RATE)]
    assert (threads[0] != threading.get_ident()) is off_loop


@pytest.mark.parametrize("fmt", FORMATS)
async def test_encode_stream_matches_direct_encoding(fmt: AudioFormat) -> None:
    pcm = sine_pcm(1.0)

    async def source() -> AsyncIterator[bytes]:
        for chunk in [pcm[: RATE // 2], pcm[RATE // 2 :]]:  # 250 ms chunks, both via a thread
            yield chunk

    streamed = b"".join([piece async for piece in encode_stream(source(), fmt, RATE)])
    direct = StreamEncoder(fmt, RATE)
    expected = direct.encode(pcm[: RATE // 2]) + direct.encode(pcm[RATE // 2 :]) + direct.finish()
    # Compared decoded: Ogg picks a random stream serial number per file.
    assert np.array_equal(decode(streamed, fmt)[0], decode(expected, fmt)[0])


async def test_abandoned_stream_is_released_quietly() -> None:
    # A client that disconnects mid-response: the generator is closed before finish().
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks_of(sine_pcm(2.0)):
            yield chunk

    # encode_stream is an async generator, typed as the AsyncIterator it promises.
    stream = cast(AsyncGenerator[bytes, None], encode_stream(source(), "opus", RATE))
    assert await anext(stream)
    await stream.aclose()
    abandoned = StreamEncoder("aac", RATE)
    abandoned.encode(sine_pcm(1.0))
    del abandoned
    gc.collect()


# -- API surface ------------------------------------------------------------------------------


def test_content_types() -> None:
    assert CONTENT_TYPES == {
        "mp3": "audio/mpeg",
        "opus": "audio/ogg",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": "audio/pcm",
    }
    for fmt in FORMATS:
        assert StreamEncoder(fmt, RATE).content_type == CONTENT_TYPES[fmt]


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown audio format 'ogg'"):
        StreamEncoder("ogg", RATE)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [0, -24_000])
def test_non_positive_sample_rate_is_rejected(rate: int) -> None:
    with pytest.raises(ValueError, match="sample rate must be positive"):
        StreamEncoder("mp3", rate)


def test_non_positive_bitrate_is_rejected() -> None:
    with pytest.raises(ValueError, match="bitrate must be positive"):
        StreamEncoder("mp3", RATE, bitrate=0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_odd_length_pcm_is_rejected(fmt: AudioFormat) -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        StreamEncoder(fmt, RATE).encode(b"\x00\x01\x02")


async def test_encode_stream_rejects_bad_arguments_on_first_use() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"\x00\x00"

    with pytest.raises(ValueError, match="unknown audio format"):
        await anext(encode_stream(source(), "webm", RATE))  # type: ignore[arg-type]


def test_bitrate_sets_the_rate() -> None:
    pcm = sine_pcm(2.0)
    sizes = []
    for bitrate in (32_000, 128_000):
        encoder = StreamEncoder("mp3", RATE, bitrate=bitrate)
        sizes.append(len(encoder.encode(pcm) + encoder.finish()))
    assert sizes[1] > 2 * sizes[0]


def test_finish_is_final() -> None:
    encoder = StreamEncoder("mp3", RATE)
    encoder.encode(sine_pcm(0.1))
    encoder.finish()
    assert encoder.finish() == b""
    with pytest.raises(RuntimeError, match="already finished"):
        encoder.encode(sine_pcm(0.1))


# -- cost (printed, not asserted; run with -s to see it) --------------------------------------


def test_print_encode_cost() -> None:
    pcm = sine_pcm(10.0)
    costs = []
    for fmt in FORMATS:
        start = time.perf_counter()
        encode_chunked(fmt, pcm)
        costs.append(f"{fmt} {(time.perf_counter() - start) * 1000 / 10:.2f}")
    print("\nencode cost, ms per second of 24 kHz audio in 40 ms chunks: " + ", ".join(costs))
