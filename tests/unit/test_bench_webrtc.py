"""The WebRTC bench client times reply audio as it comes off the wire, ahead of aiortc's jitter
buffer, and still hands every packet to that buffer."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiortc")

from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from hark.bench.webrtc import VAD_CHUNK_MS, _Arrivals, phase_ms
from hark.transports.webrtc.opus import FRAME_SAMPLES, JITTER_BUFFER, SILENCE, ReplyEncoder


class Buffer:
    def __init__(self) -> None:
        self.added: list[Any] = []

    def add(self, packet: Any) -> tuple[bool, None]:
        self.added.append(packet)
        return False, None


class RtpPacket:
    def __init__(self, data: bytes) -> None:
        self._data = data


def opus(frames: list[bytes]) -> list[RtpPacket]:
    encoder = ReplyEncoder()
    return [RtpPacket(bytes(encoder.encode(pcm, i * FRAME_SAMPLES))) for i, pcm in enumerate(frames)]


def test_loud_packets_are_seen_on_arrival_and_all_go_on_to_the_buffer() -> None:
    tone = (np.sin(np.arange(FRAME_SAMPLES) / 8.0) * 8000).astype("<i2").tobytes()
    packets = opus([SILENCE] * 3 + [tone] * 3 + [SILENCE] * 20)
    buffer = Buffer()
    loud: list[int] = []
    arrivals = _Arrivals(buffer, lambda: loud.append(len(buffer.added)))
    for packet in packets:
        assert arrivals.add(packet) == (False, None)
    assert buffer.added == packets
    # Seen before the buffer got the packet; the codec's look-ahead may carry a little into the
    # next frame, and the silence after dies away within a few frames.
    assert loud and loud[0] == 3 and max(loud) < 10


async def test_install_wraps_the_receivers_jitter_buffer() -> None:
    pc = RTCPeerConnection()
    try:
        sender = pc.addTrack(AudioStreamTrack())
        (receiver,) = [t.receiver for t in pc.getTransceivers() if t.sender is sender]
        original = getattr(receiver, JITTER_BUFFER)
        _Arrivals.install(receiver, lambda: None)
        wrapped = getattr(receiver, JITTER_BUFFER)
        assert isinstance(wrapped, _Arrivals) and wrapped.buffer is original
    finally:
        await pc.close()


def test_turns_start_on_phases_spread_over_a_vad_chunk() -> None:
    phases = [phase_ms(turn) for turn in range(8)]
    assert phases[0] == 0
    assert all(0 <= phase < VAD_CHUNK_MS for phase in phases)
    assert len(set(phases)) == len(phases)
    # Eight turns leave no gap over a quarter of the chunk (wrapping round).
    edges = [*sorted(phases), VAD_CHUNK_MS]
    assert max(b - a for a, b in itertools.pairwise(edges)) <= VAD_CHUNK_MS // 4
