"""Limits on a stream once it is open, as pure, clock-driven cores: input-audio pacing, the byte
gate, the outbound buffer budget and the idle timer. Nothing here sleeps or does I/O; callers pass
the time (``time.monotonic()`` unless stated) and act on the answer. Rate limits are in
:mod:`hark.security.rate`, the session cap in :mod:`hark.security.slots`.
"""

from __future__ import annotations

import asyncio
import enum


class ByteGate:
    """Bytes received but not yet processed, at most ``limit_bytes``: :meth:`enter` waits (so
    the reader stops reading and TCP holds the client back) until :meth:`leave` makes room. One
    item larger than the limit still passes when nothing else is queued."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("limit_bytes must be positive")
        self.limit = limit_bytes
        self.queued = 0
        self.peak = 0
        self._room = asyncio.Condition()

    async def enter(self, size: int) -> None:
        async with self._room:
            await self._room.wait_for(lambda: self.queued == 0 or self.queued + size <= self.limit)
            self.queued += size
            self.peak = max(self.peak, self.queued)

    async def leave(self, size: int) -> None:
        async with self._room:
            self.queued = max(0, self.queued - size)
            self._room.notify_all()


# -- input audio pacing ---------------------------------------------------------------------


class AudioThrottle:
    """Keeps input audio from running faster than ``max_speed`` × real time.

    A leaky bucket measured in seconds of audio: every chunk adds its duration, the level drains
    at ``max_speed`` audio-seconds per wall-second, and whatever is above ``burst_s`` must wait.
    ``push`` returns how long the caller should sleep before taking the next chunk; after that
    sleep the audio ahead of the allowed pace (``buffered_s``) is at most ``burst_s``. Long-run
    throughput is ``max_speed`` × real time; a client that starts with a burst gets ``burst_s``
    of audio in at once.
    """

    def __init__(
        self,
        max_speed: float = 2.0,
        *,
        burst_s: float = 2.0,
        sample_rate: int = 24_000,
        sample_width: int = 2,
        channels: int = 1,
    ) -> None:
        if max_speed <= 0 or burst_s < 0 or sample_rate <= 0 or sample_width <= 0 or channels <= 0:
            raise ValueError("max_speed, sample_rate, sample_width and channels must be positive")
        self.max_speed = max_speed
        self.burst_s = burst_s
        self.sample_rate = sample_rate
        self.bytes_per_frame = sample_width * channels
        self._level = 0.0
        self._updated: float | None = None
        self.total_audio_s = 0.0
        self.total_sleep_s = 0.0
        self.max_buffered_s = 0.0
        """The most audio ever ahead of the allowed pace once the caller has slept."""

    def duration(self, pcm: bytes | bytearray | memoryview | int, sample_rate: int | None = None) -> float:
        nbytes = pcm if isinstance(pcm, int) else len(pcm)
        return nbytes / self.bytes_per_frame / (sample_rate or self.sample_rate)

    def _drain(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            self._level = max(0.0, self._level - (now - self._updated) * self.max_speed)
        if self._updated is None or now > self._updated:
            self._updated = now

    def push(
        self, pcm: bytes | bytearray | memoryview | int, now: float, *, sample_rate: int | None = None
    ) -> float:
        """Account for a chunk (bytes, or a byte count) received at ``now``; return seconds to sleep."""
        nbytes = pcm if isinstance(pcm, int) else len(pcm)
        duration_s = nbytes / self.bytes_per_frame / (sample_rate or self.sample_rate)
        updated = self._updated
        if updated is None or now <= updated or duration_s < 0.0:
            return self.push_seconds(duration_s, now)
        # Every frame of every session comes through here: below the burst (the usual case) the
        # same arithmetic as push_seconds, without its calls (docs/benchmarks.md, entry 40).
        level = self._level - (now - updated) * self.max_speed
        level = (level if level > 0.0 else 0.0) + duration_s
        self._level = level
        self._updated = now
        self.total_audio_s += duration_s
        if level <= self.burst_s:
            if level > self.max_buffered_s:
                self.max_buffered_s = level
            return 0.0
        sleep = (level - self.burst_s) / self.max_speed
        self.total_sleep_s += sleep
        self.max_buffered_s = max(self.max_buffered_s, level - sleep * self.max_speed)
        return sleep

    def push_seconds(self, duration_s: float, now: float) -> float:
        self._drain(now)
        self._level += max(0.0, duration_s)
        self.total_audio_s += max(0.0, duration_s)
        sleep = max(0.0, (self._level - self.burst_s) / self.max_speed)
        self.total_sleep_s += sleep
        self.max_buffered_s = max(self.max_buffered_s, self._level - sleep * self.max_speed)
        return sleep

    def buffered_s(self, now: float) -> float:
        """Seconds of audio received ahead of ``max_speed`` × real time, as of ``now``."""
        if self._updated is None:
            return 0.0
        return max(0.0, self._level - max(0.0, now - self._updated) * self.max_speed)


# -- the outbound buffer --------------------------------------------------------------------


class Verdict(enum.Enum):
    SEND = "send"
    """Queue it."""
    DROP = "drop"
    """Audio over the budget: do not queue it (the client hears a gap)."""
    CLOSE = "close"
    """Control events alone exceed the budget: the client is not reading; close the session."""


class OutboundBudget:
    """Bytes queued for one slow socket, at most ``limit_bytes``.

    Call :meth:`offer` before queuing an event and :meth:`sent` (or :meth:`discard`) when it
    leaves the queue. Audio that would go over the budget is dropped. Control events are never
    dropped (the protocol needs them); when they push the total over the budget, queued audio
    should be evicted (oldest first) until :attr:`excess` is 0, and when control events alone
    would exceed it the verdict is CLOSE.
    """

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("limit_bytes must be positive")
        self.limit = limit_bytes
        self.audio = 0
        self.control = 0
        self.peak = 0
        self.dropped_events = 0
        self.dropped_bytes = 0

    @property
    def queued(self) -> int:
        return self.audio + self.control

    @property
    def excess(self) -> int:
        """Bytes over the budget; evict that much queued audio."""
        return max(0, self.queued - self.limit)

    def offer(self, size: int, *, audio: bool) -> Verdict:
        if audio:
            if self.queued + size > self.limit:
                self.dropped_events += 1
                self.dropped_bytes += size
                return Verdict.DROP
            self.audio += size
        else:
            if self.control + size > self.limit:
                return Verdict.CLOSE
            self.control += size
        self.peak = max(self.peak, self.queued)
        return Verdict.SEND

    def sent(self, size: int, *, audio: bool) -> None:
        """An event left the queue for the socket (or was dropped from the queue)."""
        if audio:
            self.audio = max(0, self.audio - size)
        else:
            self.control = max(0, self.control - size)

    def discard(self, size: int, *, audio: bool) -> None:
        """A queued event was evicted unsent to make room (counted as dropped). For audio
        thrown away on barge-in use :meth:`sent`."""
        self.sent(size, audio=audio)
        if audio:
            self.dropped_events += 1
            self.dropped_bytes += size


# -- idle -----------------------------------------------------------------------------------


class IdleTimer:
    """``timeout_s`` without activity (audio or a client event) means idle."""

    def __init__(self, timeout_s: float, now: float) -> None:
        self.timeout_s = timeout_s
        self.last = now

    def touch(self, now: float) -> None:
        self.last = max(self.last, now)

    def remaining(self, now: float) -> float:
        return max(0.0, self.last + self.timeout_s - now)

    def expired(self, now: float) -> bool:
        return now - self.last >= self.timeout_s
