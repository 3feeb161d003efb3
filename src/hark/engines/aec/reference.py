"""The far end: what the listener's speaker plays, lined up with the microphone's samples.

A pure core. The timeline is the microphone's own sample count: every near-end sample that
arrives moves the playhead one sample on, and the far-end audio under the playhead is what was
playing while that sample was captured. Audio handed to ``play`` without a position starts
where the queue ends, or at the playhead when nothing is queued: the client plays what it
receives in order, starting on arrival after running dry (the same model as
``pipeline.playback.PlaybackClock``). What is left of the fixed delay between the two streams
(network, device buffers, the room) is AEC3's own delay estimator's to find.
"""

from __future__ import annotations

import collections

import numpy as np

from hark.engines.base import Float32Array


class MicClock:
    """When the microphone's first sample was captured, on this host's monotonic clock: the
    earliest ``arrival - samples / rate`` seen. Audio read late (a busy event loop, a network
    stall) only makes that later, so the minimum is the on-time estimate. With it, reply audio
    starts under the sample being captured now rather than the last one read, which may be
    hundreds of ms behind while a transcription runs, a jump in delay AEC3 would have to find
    again (and did not, in time, on a phone call: the reply's first words barged in)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.start: float | None = None

    def arrived(self, samples: int, now: float) -> None:
        """``samples`` in all have arrived by ``now``."""
        start = now - samples / self.rate
        if self.start is None or start < self.start:
            self.start = start

    def position(self, now: float) -> int | None:
        return None if self.start is None else int((now - self.start) * self.rate)


class FarEnd:
    def __init__(self, rate: int, *, tail_ms: int) -> None:
        self.rate = rate
        self.position = 0
        """Near-end samples seen so far: the playhead, in the microphone's clock."""
        self._queue: collections.deque[Float32Array] = collections.deque()
        self._queued = 0
        self._tail = rate * tail_ms // 1000
        self._audible_until = -1
        """Playhead position until which an echo of played audio may still reach the microphone."""

    @property
    def queued(self) -> int:
        return self._queued

    def play(self, audio: Float32Array, *, at: int | None = None) -> None:
        """``audio`` starts playing at near-end sample ``at`` (None: after what is queued)."""
        if audio.size == 0:
            return
        end = self.position + self._queued
        if at is not None:
            if at > end:
                self._push(np.zeros(at - end, dtype=np.float32))
            elif at < end:
                audio = audio[end - at :]  # that part would overlap what already plays
                if audio.size == 0:
                    return
        self._push(np.asarray(audio, dtype=np.float32))

    def _push(self, audio: Float32Array) -> None:
        self._queue.append(audio)
        self._queued += audio.size
        self._audible_until = max(self._audible_until, self.position + self._queued + self._tail)

    def clear(self) -> None:
        """The client dropped what it had not played yet (a barge-in's clear)."""
        self._queue.clear()
        self._queued = 0
        self._audible_until = min(self._audible_until, self.position + self._tail)

    def take(self, n: int) -> tuple[Float32Array, bool]:
        """The far-end audio under the next ``n`` near-end samples (silence where nothing
        played), and whether an echo may be in them at all."""
        out = np.zeros(n, dtype=np.float32)
        filled = 0
        while filled < n and self._queue:
            head = self._queue[0]
            use = min(n - filled, head.size)
            out[filled : filled + use] = head[:use]
            filled += use
            if use == head.size:
                self._queue.popleft()
            else:
                self._queue[0] = head[use:]
        self._queued -= filled
        echo_possible = self.position < self._audible_until
        self.position += n
        return out, echo_possible
