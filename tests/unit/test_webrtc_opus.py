"""Opus coded in the event loop: the reply encoder, and the caller's audio decoded on arrival in
place of aiortc's jitter buffer (installed in a real aiortc receiver)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiortc")

from aiortc import RTCPeerConnection
from av import AudioFrame, CodecContext, Packet

from hark.transports.webrtc.opus import (
    FRAME_SAMPLES,
    JITTER_BUFFER,
    RATE,
    TIME_BASE,
    CallerAudio,
    ReplyEncoder,
    opus_payload_types,
)

OPUS = 111


def sine(frames: int, amplitude: float = 8000.0) -> list[bytes]:
    t = np.arange(frames * FRAME_SAMPLES) / RATE
    pcm = (np.sin(2 * np.pi * 440.0 * t) * amplitude).astype("<i2")
    return [pcm[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES].tobytes() for i in range(frames)]


@dataclass
class Rtp:
    sequence_number: int
    payload: bytes
    payload_type: int = OPUS
    timestamp: int = 0
    _data: bytes = field(init=False)

    def __post_init__(self) -> None:
        self._data = self.payload


class Fallback:
    def __init__(self) -> None:
        self.packets: list[Any] = []

    def add(self, packet: Any) -> tuple[bool, None]:
        self.packets.append(packet)
        return False, None


def opus_packets(frames: list[bytes]) -> list[bytes]:
    encoder = ReplyEncoder()
    return [bytes(encoder.encode(pcm, i * FRAME_SAMPLES)) for i, pcm in enumerate(frames)]


def level(pcm: bytes) -> float:
    return float(np.sqrt(np.mean(np.frombuffer(pcm, dtype="<i2").astype(np.float64) ** 2)))


def test_the_encoder_makes_one_packet_per_frame_stamped_with_its_rtp_time() -> None:
    encoder = ReplyEncoder()
    packets = [encoder.encode(pcm, i * FRAME_SAMPLES) for i, pcm in enumerate(sine(5))]
    assert [p.pts for p in packets] == [i * FRAME_SAMPLES for i in range(5)]
    assert all(p.time_base == TIME_BASE for p in packets)
    sizes = [len(bytes(p)) for p in packets]
    assert all(0 < size <= 1275 for size in sizes)  # Opus's largest frame
    assert sum(sizes[1:]) / 4 < 200  # ~48 kb/s: 120 bytes a frame


def decoded(packets: list[bytes]) -> np.ndarray:
    audio = CallerAudio({OPUS}, Fallback())
    for i, packet in enumerate(packets):
        audio.add(Rtp(i, packet))
    return np.frombuffer(bytes(audio._held), dtype="<i2").astype(np.float64)


def snr_db(reference: np.ndarray, decoded: np.ndarray, lag: int) -> float:
    error = reference[: len(reference) - lag] - decoded[lag:]
    return float(10 * np.log10((reference[: len(reference) - lag] ** 2).sum() / (error**2).sum()))


def test_settled_silence_is_sent_again_without_the_encoder_and_speech_after_it_decodes_alike() -> None:
    speech = sine(10)
    frames = speech + [bytes(FRAME_SAMPLES * 2)] * 60 + speech
    encoder, reference = ReplyEncoder(), ReplyEncoder()
    packets = [bytes(encoder.encode(pcm, i * FRAME_SAMPLES)) for i, pcm in enumerate(frames)]
    silent = packets[10:70]
    assert len(set(silent[-20:])) == 1 and len(silent[-1]) <= 3  # a CELT silence frame
    assert encoder.encoded < len(frames) - 30  # most of the silence never reached libopus
    full = [bytes(reference._encode(pcm, i * FRAME_SAMPLES)) for i, pcm in enumerate(frames)]
    input_ = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float64)
    after = slice(70 * FRAME_SAMPLES, 80 * FRAME_SAMPLES + 120)
    lag = 120  # CELT's 2.5 ms look-ahead
    ours, theirs = decoded(packets)[after], decoded(full)[after]
    assert snr_db(input_[after], ours, lag) > 10
    assert abs(snr_db(input_[after], ours, lag) - snr_db(input_[after], theirs, lag)) < 1.5
    assert not decoded(packets)[40 * FRAME_SAMPLES : 70 * FRAME_SAMPLES].any()


def plain_decode(packets: list[bytes]) -> bytes:
    codec: Any = CodecContext.create("libopus", "r")
    codec.format, codec.layout, codec.sample_rate = "s16", "mono", RATE
    return b"".join(f.to_ndarray().tobytes() for p in packets for f in codec.decode(Packet(p)))


@pytest.mark.parametrize("encode", ["ours", "aiortc"])
def test_a_silent_callers_settled_silence_skips_the_decoder_and_speech_after_it_is_unchanged(
    encode: str,
) -> None:
    speech = sine(10)
    frames = speech + [bytes(FRAME_SAMPLES * 2)] * 60 + speech + [bytes(FRAME_SAMPLES * 2)] * 3
    if encode == "ours":
        packets = opus_packets(frames)
    else:  # a caller on aiortc: stereo, 96 kb/s
        from aiortc.codecs.opus import OpusEncoder

        encoder = OpusEncoder()
        packets = []
        for i, pcm in enumerate(frames):
            frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
            frame.planes[0].update(pcm)
            frame.pts, frame.sample_rate, frame.time_base = i * FRAME_SAMPLES, RATE, TIME_BASE
            packets.append(encoder.encode(frame)[0][0])
    audio = CallerAudio({OPUS}, Fallback())
    for i, packet in enumerate(packets):
        audio.add(Rtp(i, packet))
    assert bytes(audio._held) == plain_decode(packets)  # sample for sample
    assert audio.decoded < len(packets) - 40  # most of the silence never reached libopus


async def test_caller_audio_is_decoded_as_each_packet_arrives() -> None:
    fallback = Fallback()
    audio = CallerAudio({OPUS}, fallback)
    packets = opus_packets(sine(10) + [bytes(FRAME_SAMPLES * 2)] * 10)
    assert audio.add(Rtp(1000, packets[0])) == (False, None)
    first = await asyncio.wait_for(audio.take(), 1)
    assert len(first) == FRAME_SAMPLES * 2  # at once: no packet waits for the next
    for i, packet in enumerate(packets[1:], start=1001):
        audio.add(Rtp(i, packet))
    rest = await asyncio.wait_for(audio.take(), 1)  # everything held, in one piece
    assert len(rest) == 19 * FRAME_SAMPLES * 2
    assert level(rest[: 8 * FRAME_SAMPLES * 2]) > 2000  # the tone
    assert level(rest[-5 * FRAME_SAMPLES * 2 :]) < 50  # the silence
    assert not fallback.packets and audio.failed == 0


async def test_late_and_repeated_packets_are_dropped_and_other_codecs_go_to_aiortc() -> None:
    fallback = Fallback()
    audio = CallerAudio({OPUS}, fallback)
    packets = opus_packets(sine(3))
    audio.add(Rtp(65535, packets[0]))
    audio.add(Rtp(1, packets[2]))  # across the wrap: later
    audio.add(Rtp(0, packets[1]))  # late
    audio.add(Rtp(1, packets[2]))  # repeated
    assert len(await asyncio.wait_for(audio.take(), 1)) == 2 * FRAME_SAMPLES * 2
    pcmu = Rtp(2, b"\xff" * 160, payload_type=0)
    audio.add(pcmu)
    assert fallback.packets == [pcmu]


async def test_audio_nobody_takes_is_bounded() -> None:
    audio = CallerAudio({OPUS}, Fallback())
    packets = opus_packets(sine(150))  # 3 s
    for i, packet in enumerate(packets):
        audio.add(Rtp(i, packet))
    held = await asyncio.wait_for(audio.take(), 1)
    assert len(held) == 2 * RATE * 2 and audio.dropped_bytes == 50 * FRAME_SAMPLES * 2


def test_payload_types_are_read_from_the_sdp() -> None:
    sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
    assert opus_payload_types(sdp) == {111}


async def test_installed_in_aiortcs_receiver_in_place_of_its_jitter_buffer() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        aiortcs = getattr(receiver, JITTER_BUFFER)  # fails if aiortc moved it: opus.py relies on it
        audio = CallerAudio.install(receiver, "a=rtpmap:111 opus/48000/2\r\n")
        assert audio is not None and audio.fallback is aiortcs
        assert getattr(receiver, JITTER_BUFFER) is audio
        assert CallerAudio.install(object(), "a=rtpmap:111 opus/48000/2\r\n") is None
    finally:
        await pc.close()
