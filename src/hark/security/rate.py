"""Rate limits as pure, clock-driven cores: a token bucket per key, in memory (one instance) or
as fixed windows counted by the shared store (every instance)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from hark.errors import HarkError

log = logging.getLogger("hark.security")


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
    """A shared counter: ``hark.sessionstore``'s ``SessionStore.hit`` (Redis across instances)."""

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
