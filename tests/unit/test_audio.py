"""Tests for PCM helpers and resampling (hark.audio)."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from hark.audio import (
    AudioFormatError,
    Chunker,
    PCM16Resampler,
    Resampler,
    decode_base64_pcm16,
    float_to_pcm16,
    pcm16_duration_ms,
    pcm16_to_float,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sine(frequency: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def peak_frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[int(np.argmax(spectrum))])


# -- decode_base64_pcm16 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "pcm",
    [b"", b"\x00\x00", b"\x01\x02\x03\x04", bytes(range(256)), np.arange(-100, 100, dtype="<i2").tobytes()],
)
def test_decode_valid(pcm: bytes) -> None:
    assert decode_base64_pcm16(b64(pcm), max_bytes=1024) == pcm


def test_decode_exactly_max_bytes() -> None:
    pcm = bytes(range(200)) * 5  # 1000 bytes
    assert decode_base64_pcm16(b64(pcm), max_bytes=1000) == pcm


@pytest.mark.parametrize("pcm", [b"\x00", b"\x00\x01\x02", bytes(99)])
def test_decode_odd_length(pcm: bytes) -> None:
    with pytest.raises(AudioFormatError, match=r"^PCM16 audio must have an even number of bytes$"):
        decode_base64_pcm16(b64(pcm), max_bytes=1024)


@pytest.mark.parametrize("data", ["AAA", "A", "!!!!", "AA==AA==", "AA AA", "AAAA\n", "AA-_", "ÀÀÀÀ"])
def test_decode_invalid_base64(data: str) -> None:
    with pytest.raises(AudioFormatError, match=r"^audio is not valid base64$"):
        decode_base64_pcm16(data, max_bytes=1024)


@pytest.mark.parametrize("data", [None, 5, 1.5, b"AAAA", ["AAAA"], {"audio": "AAAA"}, bytearray(b"AAAA")])
def test_decode_non_string(data: object) -> None:
    with pytest.raises(AudioFormatError, match=r"^audio must be a base64 string$"):
        decode_base64_pcm16(data, max_bytes=1024)


@pytest.mark.parametrize(("max_bytes", "size"), [(1000, 1200), (1000, 2000), (32, 64), (0, 6)])
def test_decode_oversize(max_bytes: int, size: int) -> None:
    with pytest.raises(AudioFormatError, match=f"^audio chunk exceeds {max_bytes} bytes$"):
        decode_base64_pcm16(b64(bytes(size)), max_bytes=max_bytes)


def test_oversize_is_refused_before_decoding() -> None:
    # Not valid base64 either, but the size check comes first.
    with pytest.raises(AudioFormatError, match="exceeds"):
        decode_base64_pcm16("!" * 10_000, max_bytes=100)


@pytest.mark.parametrize(("max_bytes", "size"), [(6, 8), (1000, 1002)])
def test_decoded_audio_never_exceeds_max_bytes(max_bytes: int, size: int) -> None:
    with pytest.raises(AudioFormatError, match="exceeds"):
        decode_base64_pcm16(b64(bytes(size)), max_bytes=max_bytes)


def test_audio_format_error_is_a_value_error() -> None:
    assert issubclass(AudioFormatError, ValueError)


# -- PCM16 <-> float ---------------------------------------------------------------------------


def test_pcm16_to_float_values() -> None:
    pcm = np.array([0, 1, -1, 16384, -16384, 32767, -32768], dtype="<i2").tobytes()
    audio = pcm16_to_float(pcm)
    assert audio.dtype == np.float32
    np.testing.assert_array_equal(
        audio, np.array([0, 1 / 32768, -1 / 32768, 0.5, -0.5, 32767 / 32768, -1.0], dtype=np.float32)
    )


def test_pcm16_is_little_endian() -> None:
    np.testing.assert_array_equal(
        pcm16_to_float(b"\x00\x40\x00\xc0"), np.array([0.5, -0.5], dtype=np.float32)
    )


def test_pcm16_to_float_empty() -> None:
    audio = pcm16_to_float(b"")
    assert audio.dtype == np.float32
    assert audio.shape == (0,)


def test_float_to_pcm16_values_and_clipping() -> None:
    audio = np.array([0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -7.0], dtype=np.float32)
    pcm = float_to_pcm16(audio)
    assert isinstance(pcm, bytes)
    assert len(pcm) == 14
    np.testing.assert_array_equal(
        np.frombuffer(pcm, dtype="<i2"), np.array([0, 32767, -32768, 16384, -16384, 32767, -32768])
    )


def test_float_to_pcm16_empty() -> None:
    assert float_to_pcm16(np.zeros(0, dtype=np.float32)) == b""


def test_round_trip_within_one_step() -> None:
    samples = np.arange(-32768, 32768, dtype=np.int64)
    pcm = samples.astype("<i2").tobytes()
    back = np.frombuffer(float_to_pcm16(pcm16_to_float(pcm)), dtype="<i2").astype(np.int64)
    assert back.shape == samples.shape
    assert int(np.max(np.abs(back - samples))) <= 1
    assert back[32768] == 0  # zero stays zero


def test_float_round_trip_within_one_step() -> None:
    audio = sine(440, 16000, 0.1, amplitude=0.9)
    back = pcm16_to_float(float_to_pcm16(audio))
    assert back.shape == audio.shape
    assert float(np.max(np.abs(back - audio))) <= 2 / 32768


def test_round_trip_is_exact() -> None:
    samples = np.array([1, -1, 100, -100, 12345, 32767, -32768], dtype="<i2")
    assert float_to_pcm16(pcm16_to_float(samples.tobytes())) == samples.tobytes()


@pytest.mark.parametrize(
    ("n_bytes", "rate", "expected"),
    [(32000, 16000, 1000.0), (48000, 24000, 1000.0), (320, 16000, 10.0), (0, 8000, 0.0)],
)
def test_pcm16_duration_ms(n_bytes: int, rate: int, expected: float) -> None:
    assert pcm16_duration_ms(n_bytes, rate) == pytest.approx(expected)


# -- Resampler ---------------------------------------------------------------------------------


def test_resampler_passthrough_at_the_same_rate() -> None:
    resampler = Resampler(16000, 16000)
    audio = sine(440, 16000, 0.05)
    out = resampler.process(audio)
    assert out is audio
    assert resampler.process(audio, last=True) is audio
    assert (resampler.in_rate, resampler.out_rate) == (16000, 16000)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(0, 16000), (-1, 16000), (24000, 0), (24000, -1), (0, 0)])
def test_invalid_rates(in_rate: int, out_rate: int) -> None:
    with pytest.raises(AudioFormatError, match=f"^invalid sample rate {in_rate} -> {out_rate}$"):
        Resampler(in_rate, out_rate)
    with pytest.raises(AudioFormatError):
        PCM16Resampler(in_rate, out_rate)


@pytest.mark.parametrize("chunk", [480, 512, 1000, 24000])
def test_24k_to_16k_streaming(chunk: int) -> None:
    resampler = Resampler(24000, 16000)
    audio = sine(440, 24000, 1.0)
    parts = [resampler.process(audio[i : i + chunk]) for i in range(0, len(audio), chunk)]
    parts.append(resampler.process(np.zeros(0, dtype=np.float32), last=True))
    out = np.concatenate(parts)
    assert out.dtype == np.float32
    # 24000 samples in, 2/3 of them out once flushed.
    assert abs(len(out) - 16000) <= 2
    assert peak_frequency(out, 16000) == pytest.approx(440.0, abs=2.0)
    # Amplitude preserved away from the edges.
    assert float(np.max(np.abs(out[1000:-1000]))) == pytest.approx(0.5, abs=0.02)


def test_16k_to_24k_streaming() -> None:
    resampler = Resampler(16000, 24000)
    audio = sine(1000, 16000, 0.5)
    parts = [resampler.process(audio[i : i + 320]) for i in range(0, len(audio), 320)]
    parts.append(resampler.process(np.zeros(0, dtype=np.float32), last=True))
    out = np.concatenate(parts)
    assert abs(len(out) - 12000) <= 2
    assert peak_frequency(out, 24000) == pytest.approx(1000.0, abs=3.0)


def test_streaming_matches_one_shot() -> None:
    audio = sine(440, 24000, 0.5)
    one_shot = Resampler(24000, 16000).process(audio, last=True)
    streaming = Resampler(24000, 16000)
    parts = [streaming.process(audio[i : i + 700]) for i in range(0, len(audio), 700)]
    parts.append(streaming.process(np.zeros(0, dtype=np.float32), last=True))
    out = np.concatenate(parts)
    assert out.shape == one_shot.shape
    np.testing.assert_allclose(out, one_shot, atol=1e-4)


def test_pcm16_resampler() -> None:
    passthrough = PCM16Resampler(22050, 22050)
    data = b"\x01\x02\x03\x04"
    assert passthrough.process(data) is data

    resampler = PCM16Resampler(24000, 16000)
    pcm = float_to_pcm16(sine(440, 24000, 1.0))
    out = resampler.process(pcm[: len(pcm) // 2]) + resampler.process(pcm[len(pcm) // 2 :], last=True)
    assert len(out) % 2 == 0
    assert abs(len(out) // 2 - 16000) <= 2
    assert peak_frequency(pcm16_to_float(out), 16000) == pytest.approx(440.0, abs=2.0)


# -- Chunker -----------------------------------------------------------------------------------


def test_chunker_cuts_and_keeps_the_remainder() -> None:
    chunker = Chunker(4)
    assert chunker.push(b"ab") == []
    assert chunker.push(b"cdefghij") == [b"abcd", b"efgh"]
    assert chunker.push(b"k") == []
    assert chunker.push(b"lmnopqrs") == [b"ijkl", b"mnop"]
    assert chunker.flush() == b"qrs"
    assert chunker.flush() == b""
    assert chunker.push(b"tuvw") == [b"tuvw"]
    assert chunker.flush() == b""


@pytest.mark.parametrize(
    ("chunk_bytes", "pushes", "chunks", "rest"),
    [
        (2, [b""], [], b""),
        (2, [b"abcdef"], [b"ab", b"cd", b"ef"], b""),
        (3, [b"abcdefg"], [b"abc", b"def"], b"g"),
        (1, [b"xyz"], [b"x", b"y", b"z"], b""),
        (5, [b"a", b"b", b"c"], [], b"abc"),
        (4, [b"abc", b"de", b"fgh", b"ij"], [b"abcd", b"efgh"], b"ij"),
    ],
)
def test_chunker_table(chunk_bytes: int, pushes: list[bytes], chunks: list[bytes], rest: bytes) -> None:
    chunker = Chunker(chunk_bytes)
    got: list[bytes] = []
    for data in pushes:
        got += chunker.push(data)
    assert got == chunks
    assert chunker.flush() == rest


def test_chunker_preserves_the_stream() -> None:
    data = bytes(range(256)) * 13
    chunker = Chunker(320)
    out: list[bytes] = []
    for start in range(0, len(data), 77):
        out += chunker.push(data[start : start + 77])
    assert all(len(chunk) == 320 for chunk in out)
    assert b"".join(out) + chunker.flush() == data
    assert len(out) == len(data) // 320


def test_chunker_returns_bytes_copies() -> None:
    chunker = Chunker(2)
    source = bytearray(b"abcd")
    chunks = chunker.push(bytes(source))
    assert all(type(chunk) is bytes for chunk in chunks)
    assert chunks == [b"ab", b"cd"]
