"""Audio on the peer connection: reply audio out on a track paced by the RTP clock in 20 ms
frames (Opus packets, encoded here: ``opus.ReplyEncoder``), and the caller's decoded audio in,
as mono PCM16 for the listening path.

The outbound track knows exactly which samples it has handed to the encoder, per reply item, so
a barge-in cuts the history at what was played, with no client ``truncate``."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, Packet

from hark.transports.webrtc.opus import FRAME_SAMPLES, RATE, ReplyEncoder

__all__ = ["FRAME_BYTES", "FRAME_SAMPLES", "RATE", "SILENCE", "Pacer", "ReplyTrack", "mono_pcm16"]

# RATE is Opus's clock: the conversation speaks and listens at it on a call (no resampling
# between it and the codec).
FRAME_BYTES = FRAME_SAMPLES * 2
SILENCE = bytes(FRAME_BYTES)
DTX_AFTER_FRAMES = 25
"""DTX (``webrtc.dtx``): after 500 ms of silent frames in a row (by then the encoder has long
settled on its 3-byte silence packet, ``opus.ReplyEncoder``) ..."""
DTX_INTERVAL_FRAMES = 20
"""... one silent (comfort) packet goes out every 400 ms instead of every 20 ms, as libopus's
own DTX does; the first frame of a reply goes out at once, and 20 ms frames follow."""


class Pacer:
    """When each 20 ms frame of the outbound track goes out, and its RTP time.

    Frames follow each other on the RTP clock, anchored at the first: frame n is due at
    ``start + n * 20 ms`` and stamped ``n * 960``, however late the loop wakes (a late frame is
    sent at once and the next ones catch up). ``restart`` re-anchors the clock at the moment a
    frame goes out early or after a gap: a reply that begins during silence is not held to the
    silence's next tick, and from there paces at real time. Pure: the caller gives the time."""

    def __init__(self, frame_samples: int = FRAME_SAMPLES, rate: int = RATE) -> None:
        self.frame_samples = frame_samples
        self.rate = rate
        self._start: float | None = None
        """Wall time of RTP time 0."""
        self.timestamp = 0
        """RTP time of the last frame sent."""

    def due(self, frames: int = 1) -> float | None:
        """When the frame ``frames`` after the last one sent is due (None before the first)."""
        if self._start is None:
            return None
        return self._start + (self.timestamp + frames * self.frame_samples) / self.rate

    def take(self, now: float, *, restart: bool = False) -> int:
        """The RTP time of the frame going out at ``now``. Without ``restart``, the next on the
        clock; with it, the clock re-anchors at ``now`` (never earlier than the next on the
        clock, so frames never overlap, nor later than the wall clock says)."""
        if self._start is None:
            self._start = now
            self.timestamp = 0
            return 0
        following = self.timestamp + self.frame_samples
        if restart:
            self.timestamp = max(following, round((now - self._start) * self.rate))
            self._start = now - self.timestamp / self.rate
        else:
            self.timestamp = following
        return self.timestamp


@dataclass(slots=True)
class _Piece:
    response_id: str
    item_id: str
    pcm: bytes


class ReplyTrack(MediaStreamTrack):
    """The reply, 20 ms at a time, on the RTP clock (silence between replies), as Opus packets
    (``encode``: PCM16 and RTP time in, a packet out; Opus unless a test says otherwise). With
    ``dtx``, settled silence is one packet every 400 ms (``DTX_AFTER_FRAMES``).

    ``on_started(response_id)`` runs when a response's first sample goes out;
    ``on_stopped(response_id)`` when its last has, once ``finish(response_id)`` said no more is
    coming; ``on_frame(pcm)`` with each 20 ms frame that carries reply audio, as it is handed to
    the encoder (the echo canceller's reference: exactly what the caller's speaker will play)."""

    kind = "audio"

    def __init__(
        self,
        *,
        on_started: Callable[[str], None] | None = None,
        on_stopped: Callable[[str], None] | None = None,
        on_frame: Callable[[bytes], None] | None = None,
        clock: Callable[[], float] | None = None,
        encode: Callable[[bytes, int], Packet[Any]] | None = None,
        dtx: bool = True,
    ) -> None:
        super().__init__()
        self._encode = encode or ReplyEncoder().encode
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.on_frame = on_frame
        self._clock = clock
        self._queue: collections.deque[_Piece] = collections.deque()
        self._played: dict[str, int] = {}
        """Samples of each reply item handed to the encoder."""
        self._playing: str | None = None
        self._finished: set[str] = set()
        self._dropped: set[str] = set()
        self.dtx = dtx
        self._quiet_frames = 0
        """Frames in a row sent without reply audio."""
        self.pacer = Pacer()
        self._wake: asyncio.Future[None] | None = None
        """Set while the track waits out a silent frame: a reply pushed then ends the wait."""
        self.queued_bytes = 0

    # -- what the session does ------------------------------------------------------------

    def push(self, response_id: str, item_id: str, pcm: bytes) -> None:
        if response_id in self._dropped or not pcm:
            return
        self._queue.append(_Piece(response_id, item_id, pcm))
        self.queued_bytes += len(pcm)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def finish(self, response_id: str) -> None:
        """No more audio will come for ``response_id``."""
        self._finished.add(response_id)
        if self._playing == response_id and not self._has(response_id):
            self._stop()
        elif self._playing is None and not self._has(response_id):
            self._finished.discard(response_id)

    def clear(self) -> dict[str, tuple[str, float]]:
        """Barge-in: drop everything not yet played. Returns, for each item cut short (audio of
        it left unplayed), its response id and the ms of it played."""
        cut: dict[str, tuple[str, float]] = {}
        for piece in self._queue:
            cut[piece.item_id] = (piece.response_id, self.played_ms(piece.item_id))
            self._dropped.add(piece.response_id)
        self._queue.clear()
        self.queued_bytes = 0
        if self._playing is not None:
            # Cleared, not stopped: output_audio_buffer.cleared says so, and no "stopped" follows.
            self._dropped.add(self._playing)
            self._finished.discard(self._playing)
            self._playing = None
        return cut

    def hold(self) -> None:
        """The reply paused (speech over it): drop what is queued but not yet played, without
        ending the reply. The conversation sends it again from the playhead if the reply
        resumes; left queued it would play on under the speaker and then be heard twice."""
        self._queue.clear()
        self.queued_bytes = 0

    def drop(self, response_id: str) -> None:
        """Refuse any later audio of ``response_id`` (it was cancelled)."""
        self._dropped.add(response_id)

    def played_ms(self, item_id: str) -> float:
        return self._played.get(item_id, 0) * 1000.0 / RATE

    @property
    def pending(self) -> bool:
        return bool(self._queue)

    @property
    def busy(self) -> bool:
        """A reply is queued or still playing (its ``on_stopped`` has not run)."""
        return bool(self._queue) or self._playing is not None

    # -- what aiortc's sender does --------------------------------------------------------

    async def recv(self) -> Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        now = self._now()
        resting = self._resting
        due = self.due
        starting = self._playing is None and bool(self._queue)  # a reply begins with this frame
        if due is not None and now < due and not starting:
            if self._playing is None:  # silence: a reply pushed meanwhile ends the wait
                await self._pause(due - now)
            else:
                await asyncio.sleep(due - now)
            now = self._now()
            starting = self._playing is None and bool(self._queue)
        # A reply that begins during silence goes out at once and paces from there; after a
        # DTX gap the RTP time follows the wall clock again.
        restart = due is not None and (resting or (starting and now < due))
        timestamp = self.pacer.take(now, restart=restart)
        return self._encode(self._next_frame(), timestamp)

    @property
    def due(self) -> float | None:
        """When the next packet goes out, unless a reply begins before (None: the first has not
        gone out yet)."""
        return self.pacer.due(DTX_INTERVAL_FRAMES if self._resting else 1)

    @property
    def _resting(self) -> bool:
        """DTX: silence has settled, so the next silent packet may wait ``DTX_INTERVAL_FRAMES``."""
        settled = self._quiet_frames >= DTX_AFTER_FRAMES
        return self.dtx and settled and self._playing is None and not self._queue

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or until ``push`` brings audio."""
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _wake_up, wake)
        self._wake = wake
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    def _next_frame(self) -> bytes:
        out = bytearray()
        while len(out) < FRAME_BYTES and self._queue:
            piece = self._queue[0]
            if self._playing != piece.response_id:
                if self._playing is not None:
                    self._stop()
                self._playing = piece.response_id
                if self.on_started is not None:
                    self.on_started(piece.response_id)
            take = min(FRAME_BYTES - len(out), len(piece.pcm))
            out += piece.pcm[:take]
            self._played[piece.item_id] = self._played.get(piece.item_id, 0) + take // 2
            if take == len(piece.pcm):
                self._queue.popleft()
            else:
                piece.pcm = piece.pcm[take:]
            self.queued_bytes -= take
        if self._playing is not None and self._playing in self._finished and not self._has(self._playing):
            self._stop()
        frame = bytes(out) + SILENCE[len(out) :]
        self._quiet_frames = 0 if out else self._quiet_frames + 1
        if out and self.on_frame is not None:
            self.on_frame(frame)
        return frame

    def _has(self, response_id: str) -> bool:
        return any(p.response_id == response_id for p in self._queue)

    def _stop(self) -> None:
        response_id, self._playing = self._playing, None
        if response_id is None:
            return
        self._finished.discard(response_id)
        if self.on_stopped is not None:
            self.on_stopped(response_id)

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()


def _wake_up(wake: asyncio.Future[None]) -> None:
    if not wake.done():
        wake.set_result(None)


def mono_pcm16(frame: AudioFrame) -> bytes:
    """A decoded frame (aiortc's Opus decoder gives interleaved s16 stereo) as mono PCM16."""
    samples = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.name != "s16":
        raise ValueError(f"unexpected sample format {frame.format.name}")
    if channels == 1:
        return bytes(samples.astype("<i2", copy=False).tobytes())
    wide = samples.reshape(-1, channels).astype(np.int32)
    return bytes((wide.sum(axis=1) // channels).astype("<i2").tobytes())
