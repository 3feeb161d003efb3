"""Limits as pure, clock-driven cores: rate limits, the session cap, input-audio pacing, the
outbound buffer budget and the idle timer. Nothing here sleeps or does I/O; callers pass the time
(``time.monotonic()`` unless stated) and act on the answer.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import Protocol

from hark.errors import HarkError

log = logging.getLogger("hark.security")

# -- rate limits ----------------------------------------------------------------------------


class TokenBucket:
    """``capacity`` requests at once, refilled at ``refill_per_s``: with capacity N and refill
    N/60 per second that is N per minute sustained, with bursts of up to N."""

    __slots__ = ("capacity", "refill_per_s", "tokens", "updated")

    def __init__(self, capacity: float, refill_per_s: float, now: float) -> None:
        if capacity <= 0 or refill_per_s <= 0:
            raise ValueError("capacity and refill_per_s must be positive")
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self.tokens = float(capacity)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
            self.updated = now

    def available(self, now: float) -> float:
        self._refill(now)
        return self.tokens

    def wait_for(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (0.0: now). Takes nothing."""
        self._refill(now)
        missing = cost - self.tokens
        return 0.0 if missing <= 1e-9 else missing / self.refill_per_s

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens and return 0.0, or take nothing and return the seconds to wait."""
        wait = self.wait_for(now, cost)
        if wait == 0.0:
            self.tokens = max(0.0, self.tokens - cost)
        return wait

    def is_full(self, now: float) -> bool:
        return self.available(now) >= self.capacity


class RateLimiter(Protocol):
    """Counts one event against every key given, all or nothing. A Redis implementation
    (a GCRA/token-bucket script per key) plugs in behind the same method."""

    async def hit(self, *keys: str) -> float:
        """0.0 when allowed (and counted for every key); otherwise the seconds to wait
        (Retry-After), and nothing is counted."""
        ...


class MemoryRateLimiter:
    """Token buckets per key, in memory, one process. ``per_minute`` requests per key per minute
    with bursts of ``burst`` (default: ``per_minute``). At most ``max_keys`` buckets are kept:
    idle (full) ones are forgotten first, then the least recently used."""

    def __init__(
        self,
        per_minute: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst if burst is not None else per_minute
        self._clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.pop(key, None)  # re-inserted: the dict stays in least-recent order
        if bucket is None:
            bucket = TokenBucket(self.burst, self.per_minute / 60.0, now)
        self._buckets[key] = bucket
        return bucket

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= self.max_keys:
            return
        for key in [k for k, b in self._buckets.items() if b.is_full(now)]:
            del self._buckets[key]
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]

    def hit_now(self, *keys: str) -> float:
        now = self._clock()
        buckets = [self._bucket(key, now) for key in dict.fromkeys(keys)]
        wait = max((bucket.wait_for(now) for bucket in buckets), default=0.0)
        if wait == 0.0:
            for bucket in buckets:
                bucket.take(now)
        self._prune(now)
        return wait

    async def hit(self, *keys: str) -> float:
        return self.hit_now(*keys)


class WindowCounter(Protocol):
    """A shared counter: ``hark.state``'s ``SessionStore.hit`` (Redis across instances)."""

    async def hit(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        """Count one event: at most ``limit`` per fixed window; (allowed, retry_after_s)."""
        ...


class StoreRateLimiter:
    """A :class:`RateLimiter` over a shared :class:`WindowCounter`, so several instances share
    one budget: ``per_minute`` per key per fixed 60 s window. Each key is counted (not all or
    nothing). When the store cannot be reached the request is let through (fail open) and a
    warning logged: rate limits protect capacity, the API key check still applies."""

    def __init__(self, store: WindowCounter, per_minute: int, *, prefix: str = "rate:") -> None:
        self.store = store
        self.per_minute = per_minute
        self.prefix = prefix

    async def hit(self, *keys: str) -> float:
        wait = 0.0
        for key in dict.fromkeys(keys):
            try:
                allowed, retry_after = await self.store.hit(self.prefix + key, self.per_minute, 60.0)
            except HarkError as exc:
                log.warning("rate limit not checked: the store is unavailable", extra={"error": str(exc)})
                continue
            if not allowed:
                wait = max(wait, retry_after, 0.001)
        return wait


# -- the session cap ------------------------------------------------------------------------


class SessionSlot:
    """One held place under a :class:`SessionCap`; ``release`` is idempotent."""

    __slots__ = ("_cap", "released")

    def __init__(self, cap: SessionCap) -> None:
        self._cap = cap
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._cap._release()


class SessionCap:
    """At most ``limit`` concurrent sessions (in this process)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.current = 0
        self.peak = 0
        self.refused = 0

    def acquire(self) -> SessionSlot | None:
        """A slot, or None when ``limit`` sessions are already open."""
        if self.current >= self.limit:
            self.refused += 1
            return None
        self.current += 1
        self.peak = max(self.peak, self.current)
        return SessionSlot(self)

    def _release(self) -> None:
        self.current = max(0, self.current - 1)


class PreAuthBudget:
    """Places for WebSockets that are upgraded but not yet authenticated (first-message auth):
    at most ``per_address`` from one client address and ``total`` in all. They are apart from
    the :class:`SessionCap`, so sockets without credentials cannot take the places of
    authenticated sessions; a socket takes a session slot only once it has authenticated."""

    def __init__(self, per_address: int, total: int) -> None:
        if per_address < 1 or total < 1:
            raise ValueError("per_address and total must be at least 1")
        self.per_address = per_address
        self.total = total
        self._held: dict[str, int] = {}
        self.current = 0
        self.refused = 0

    def acquire(self, address: str) -> PreAuthSlot | None:
        held = self._held.get(address, 0)
        if self.current >= self.total or held >= self.per_address:
            self.refused += 1
            return None
        self._held[address] = held + 1
        self.current += 1
        return PreAuthSlot(self, address)

    def _release(self, address: str) -> None:
        self.current = max(0, self.current - 1)
        held = self._held.get(address, 0) - 1
        if held > 0:
            self._held[address] = held
        else:
            self._held.pop(address, None)


class PreAuthSlot:
    """One held place under a :class:`PreAuthBudget`; ``release`` is idempotent."""

    __slots__ = ("_address", "_budget", "released")

    def __init__(self, budget: PreAuthBudget, address: str) -> None:
        self._budget = budget
        self._address = address
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._budget._release(self._address)


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
        return self.push_seconds(self.duration(pcm, sample_rate), now)

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
