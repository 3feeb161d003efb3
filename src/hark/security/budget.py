"""Per-tenant cost budgets for the engine-heavy REST routes: what a request costs, not how many.

Rate limits count requests, so twenty 4,096-character speech requests weigh as much as twenty
one-word ones. Each tenant (see :mod:`hark.security.auth`) therefore has

- at most ``max_jobs_per_key`` speech/transcription/translation requests running at once;
- a budget of characters synthesised and one of seconds of audio transcribed, each a token
  bucket holding one minute's worth and refilled continuously.

A request over a budget is refused at once with 429 and Retry-After; it never waits in the
engines' queue, so one tenant's flood cannot fill the queue another tenant's request needs
(the worker queue holds ``workers.queue_limit``; keep ``max_jobs_per_key`` below it).
Pure and clock-driven like :mod:`hark.security.rate`; one process (not shared through Redis).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from hark.config import SecuritySettings
from hark.errors import HarkError
from hark.security.rate import TokenBucket

Resource = Literal["tts_chars", "stt_audio_s"]


class BudgetExceeded(HarkError):
    """``code``: ``too_many_jobs`` or ``budget_exceeded``; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, code: str, retry_after: float) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class Job:
    """One running request's place; ``release`` is idempotent."""

    __slots__ = ("_budget", "_tenant", "released")

    def __init__(self, budget: TenantBudget, tenant: str) -> None:
        self._budget = budget
        self._tenant = tenant
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._budget._finished(self._tenant)


class TenantBudget:
    def __init__(
        self,
        *,
        max_jobs: int,
        per_minute: dict[Resource, float],
        clock: Callable[[], float] = time.monotonic,
        max_tenants: int = 10_000,
    ) -> None:
        self.max_jobs = max_jobs
        self.per_minute = per_minute
        self._clock = clock
        self.max_tenants = max_tenants
        self._running: dict[str, int] = {}
        self._buckets: dict[tuple[str, Resource], TokenBucket] = {}
        self.refused = 0

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> TenantBudget:
        return cls(
            max_jobs=settings.max_jobs_per_key,
            per_minute={
                "tts_chars": float(settings.tts_chars_per_minute),
                "stt_audio_s": settings.stt_audio_s_per_minute,
            },
        )

    def running(self, tenant: str) -> int:
        return self._running.get(tenant, 0)

    def start(self, tenant: str) -> Job:
        """A place for one more running request of ``tenant``; raises BudgetExceeded."""
        if self._running.get(tenant, 0) >= self.max_jobs:
            self.refused += 1
            raise BudgetExceeded(
                f"this key already has {self.max_jobs} requests running; wait for one to finish",
                code="too_many_jobs",
                retry_after=1.0,
            )
        self._running[tenant] = self._running.get(tenant, 0) + 1
        return Job(self, tenant)

    def charge(self, tenant: str, resource: Resource, amount: float) -> None:
        """Take ``amount`` from the tenant's budget for ``resource``; raises BudgetExceeded (and
        takes nothing) when the budget does not hold it now. An amount larger than a whole
        minute's budget is charged as a whole minute's, so it passes once the budget is full."""
        now = self._clock()
        bucket = self._bucket(tenant, resource, now)
        wait = bucket.take(now, min(amount, bucket.capacity))
        if wait > 0:
            self.refused += 1
            unit = "characters" if resource == "tts_chars" else "seconds of audio"
            raise BudgetExceeded(
                f"this key has used its budget of {self.per_minute[resource]:g} {unit} per minute",
                code="budget_exceeded",
                retry_after=wait,
            )

    def _bucket(self, tenant: str, resource: Resource, now: float) -> TokenBucket:
        key = (tenant, resource)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            per_minute = self.per_minute[resource]
            bucket = TokenBucket(per_minute, per_minute / 60.0, now)
        self._buckets[key] = bucket  # re-inserted: least recently used first
        while len(self._buckets) > self.max_tenants:
            del self._buckets[next(iter(self._buckets))]
        return bucket

    def _finished(self, tenant: str) -> None:
        left = self._running.get(tenant, 0) - 1
        if left > 0:
            self._running[tenant] = left
        else:
            self._running.pop(tenant, None)
