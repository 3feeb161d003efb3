"""Opus on a call, coded in the event loop, without aiortc's per-frame hand-offs.

Left to itself, aiortc spends more CPU on a call than the rest of hark (docs/benchmarks.md,
"Speed work" 24). Every 20 ms reply frame is made stereo by a resampler, its audio level is
measured by a Python loop over its 960 samples, and it is encoded at 96 kb/s stereo on a
thread-pool thread; every frame heard waits in a jitter buffer until four more have arrived
(80 ms), is decoded to stereo on a thread of its own and comes back to the event loop as a new
task. Here instead:

- ``ReplyEncoder`` encodes the reply track's frames itself, mono, in the loop: the track hands
  aiortc's sender finished packets, which it sends as they are. Between replies it sends the
  same silent packet again instead of encoding silence: libopus takes longer over digital
  silence (~150 µs a frame) than over speech;
- ``CallerAudio`` takes the place of the receiver's jitter buffer for Opus: each packet is
  decoded (mono) the moment it arrives, and the audio waits, bounded, until the listening task
  takes all there is at once. Nothing is played here, so there is nothing to smooth: a buffer
  that holds packets back only delays the end of the caller's turn.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import re
from typing import Any, Protocol

import av
from av import AudioFrame, CodecContext, Packet

log = logging.getLogger("hark.webrtc")

RATE = 48_000
"""Opus's clock: both directions are coded at 48 kHz, mono."""
TIME_BASE = fractions.Fraction(1, RATE)
FRAME_SAMPLES = RATE // 50
SILENCE = bytes(FRAME_SAMPLES * 2)
BITRATE = 48_000
"""Mono speech; aiortc's own encoder sends 96 kb/s of stereo."""
MAX_HELD_S = 2.0
"""Caller audio the listening task has not taken yet; past it the oldest is dropped."""
SILENT_PACKET_MAX = 8
"""Bytes; a CELT silence frame is 3 (a TOC byte and two), DTX sends 1 or 2."""
JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
"""aiortc's receiver keeps its jitter buffer here (aiortc 1.x); checked by tests/unit."""


class ReplyEncoder:
    """20 ms of mono PCM16 at 48 kHz in, one Opus packet out, stamped with its RTP time.

    CELT only (libopus's "restricted low delay"): 2.5 ms of look-ahead where "voip" has 6.5,
    and a silent frame is a 3-byte CELT silence frame, after which the decoder's state is the
    same however many follow. So once silence has settled (two silent frames encoded alike:
    after a reply, ~300 ms while libopus's DC filter dies away), that packet is sent again
    until the next sound, without the encoder. Decoded, speech after such silence is as close
    to its input as after silence really encoded (tests/unit/test_webrtc_opus.py)."""

    def __init__(self) -> None:
        codec: Any = CodecContext.create("libopus", "w")
        codec.bit_rate = BITRATE
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = RATE
        codec.time_base = TIME_BASE
        codec.options = {"application": "lowdelay"}
        self._codec = codec
        self._silent: bytes | None = None
        """The last silent frame's packet (None after sound)."""
        self._settled = False
        """Whether ``_silent`` is the settled silence, sent again without encoding."""
        self.encoded = 0

    def encode(self, pcm: bytes, pts: int) -> Packet[Any]:
        silent = pcm == SILENCE
        if silent and self._settled:
            assert self._silent is not None
            return self._stamped(Packet(self._silent), pts)
        packet = self._encode(pcm, pts)
        if silent:
            data = bytes(packet)
            self._settled = data == self._silent
            self._silent = data
        else:
            self._silent, self._settled = None, False
        return packet

    def _encode(self, pcm: bytes, pts: int) -> Packet[Any]:
        self.encoded += 1
        frame = AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.pts = pts
        frame.sample_rate = RATE
        frame.time_base = TIME_BASE
        packets = self._codec.encode(frame)
        if len(packets) != 1:  # libopus codes every 20 ms frame at once, into one packet
            raise RuntimeError(f"the Opus encoder returned {len(packets)} packets for one frame")
        return self._stamped(packets[0], pts)

    @staticmethod
    def _stamped(packet: Packet[Any], pts: int) -> Packet[Any]:
        packet.pts = pts
        packet.time_base = TIME_BASE
        return packet


class _RtpPacket(Protocol):
    """What aiortc's receiver hands its jitter buffer (``_data``: the payload, depayloaded)."""

    payload_type: int
    sequence_number: int
    timestamp: int


class _JitterBuffer(Protocol):
    def add(self, packet: Any) -> tuple[bool, Any]: ...


def opus_payload_types(sdp: str) -> set[int]:
    """The payload types an SDP maps to Opus (``a=rtpmap:111 opus/48000/2``)."""
    return {int(pt) for pt in re.findall(r"a=rtpmap:(\d+) opus/48000", sdp, flags=re.IGNORECASE)}


def opus_decoder(rate: int) -> Any:
    """A libopus decoder to mono signed 16-bit PCM at ``rate``."""
    codec: Any = CodecContext.create("libopus", "r")
    codec.format = "s16"
    codec.layout = "mono"
    codec.sample_rate = rate
    return codec


class CallerAudio:
    """The receiver's jitter buffer, for Opus: decoded on arrival, held for the listening task.

    Other payload types (a peer that sent G.711) go to aiortc's own buffer, ``fallback``, and
    reach the remote track as before. Packets that arrive after a later one are dropped, as
    aiortc drops those too late for its buffer; a lost packet is a gap, not a stall."""

    def __init__(self, payload_types: set[int], fallback: _JitterBuffer) -> None:
        self.payload_types = payload_types
        self.fallback = fallback
        self._decoder = opus_decoder(RATE)
        self._last: int | None = None
        self._held = bytearray()
        self._quiet: bytes | None = None
        """The last tiny packet that decoded to digital silence (None after anything else)."""
        self._settled: bytes | None = None
        """That packet once it has done so twice running: taken as silence, without decoding."""
        self.decoded = 0
        self._ready = asyncio.Event()
        self._max_held = int(MAX_HELD_S * RATE) * 2
        self.dropped_bytes = 0
        self.failed = 0

    @staticmethod
    def install(receiver: object, sdp: str) -> CallerAudio | None:
        """Put a CallerAudio in ``receiver`` (aiortc's RTCRtpReceiver) for the Opus payload
        types in ``sdp``; None, and aiortc's path left as it is, if this aiortc keeps its
        jitter buffer elsewhere."""
        current = getattr(receiver, JITTER_BUFFER, None)
        payload_types = opus_payload_types(sdp)
        if current is None or not hasattr(current, "add") or not payload_types:
            log.warning("aiortc's receiver is not as expected: caller audio takes aiortc's slower path")
            return None
        audio = CallerAudio(payload_types, current)
        setattr(receiver, JITTER_BUFFER, audio)
        return audio

    # -- what aiortc's receiver calls -------------------------------------------------------

    def add(self, packet: _RtpPacket) -> tuple[bool, None]:
        if packet.payload_type not in self.payload_types:
            return self.fallback.add(packet)
        sequence = packet.sequence_number
        if self._last is not None and not 0 < ((sequence - self._last) & 0xFFFF) < 0x8000:
            return False, None  # a repeat, or one that arrived after a newer packet
        data: bytes = getattr(packet, "_data", b"")
        self._last = sequence
        if data:
            self._decode(data, packet.timestamp)
        return False, None

    # -- what the listening task calls ------------------------------------------------------

    async def take(self) -> bytes:
        """All caller audio decoded since the last call (mono PCM16, 48 kHz); waits for some."""
        while not self._held:
            self._ready.clear()
            await self._ready.wait()
        pcm = bytes(self._held)
        self._held.clear()
        return pcm

    def _decode(self, data: bytes, timestamp: int) -> None:
        # A silent caller sends the same tiny packet 50 times a second. Once it has decoded to
        # digital silence twice running, the decoder's state is the same after each one
        # (as ReplyEncoder relies on), so it is taken as silence without the decoder.
        if data == self._settled:
            self._hold(SILENCE)
            return
        packet = Packet(data)
        packet.pts = timestamp
        packet.time_base = TIME_BASE
        try:
            frames = self._decoder.decode(packet)
        except av.FFmpegError:
            self.failed += 1
            self._quiet = self._settled = None
            return
        self.decoded += 1
        pcm = b"".join(frame.to_ndarray().tobytes() for frame in frames)
        if len(data) <= SILENT_PACKET_MAX and pcm == SILENCE:
            if data == self._quiet:
                self._settled = data
            self._quiet = data
        else:
            self._quiet = self._settled = None
        self._hold(pcm)

    def _hold(self, pcm: bytes) -> None:
        self._held += pcm
        if len(self._held) > self._max_held:
            excess = len(self._held) - self._max_held
            del self._held[:excess]
            self.dropped_bytes += excess
        self._ready.set()
