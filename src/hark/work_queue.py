"""A waiting line for engine work (the worker pool's, an engine executor's): by priority, shedding
the least useful work under pressure.

A pure core, clock-injected; the pool is its thin async shell. Rules (``hark.priority``):

- The most urgent class goes first, oldest first within a class. A class is read when the next
  request is chosen, so work promoted while it waits moves up at once.
- At ``limit`` waiting requests the line is full. A newcomer then takes the place of the least
  urgent, oldest request that is less urgent than itself (that one is shed: ``evicted``). If
  there is none, a FINAL newcomer joins anyway, past the limit (late, never lost; sessions are
  bounded by admission control), unless it is ``refusable``; any other is refused.
- Work of a class with a ``stale_s`` that waited longer than that is dropped when it comes up
  (``stale``): a partial transcript a second late is superseded by the next one.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from hark.priority import Priority, Work

T = TypeVar("T")

WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds. Under a full partial's service time (~0.3 s) is normal; seconds is saturation."""


class ShedReason(enum.StrEnum):
    EVICTED = "evicted"
    """Made room for more urgent work."""
    STALE = "stale"
    """Waited past its use."""
    REFUSED = "refused"
    """Arrived at a full line with nothing less urgent to displace."""


@dataclass(eq=False, slots=True)
class Entry(Generic[T]):
    item: T
    work: Work
    refusable: bool
    enqueued: float
    seq: int


@dataclass(slots=True)
class Offer(Generic[T]):
    """What :meth:`WorkQueue.push` did: whether the newcomer joins, and whom it displaced."""

    accepted: bool
    evicted: list[Entry[T]] = field(default_factory=list)


@dataclass(slots=True)
class WaitHistogram:
    """Cumulative counts of waits per bucket, their sum and count (Prometheus' shape)."""

    buckets: list[int] = field(default_factory=lambda: [0] * len(WAIT_BUCKETS))
    total_s: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total_s += seconds
        for index, bound in enumerate(WAIT_BUCKETS):
            if seconds <= bound:
                self.buckets[index] += 1


class WorkQueue(Generic[T]):
    def __init__(
        self,
        limit: int,
        *,
        stale_s: Mapping[Priority, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self.limit = limit
        self.stale_s = dict(stale_s or {})
        self._clock = clock
        self._entries: list[Entry[T]] = []
        self._seq = itertools.count()
        self.waits = {p: WaitHistogram() for p in Priority}
        """How long work waited before it ran, per class (at the class it ran as)."""
        self.shed: dict[tuple[Priority, ShedReason], int] = {(p, r): 0 for p in Priority for r in ShedReason}
        """Work dropped, per class and reason (refused FINAL/REQUEST work is counted too)."""
        self._recent: deque[tuple[float, float]] = deque(maxlen=256)
        """(when, seconds waited) of the FINAL work that ran lately."""

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[T]:
        return (entry.item for entry in self._entries)

    @property
    def full(self) -> bool:
        return len(self._entries) >= self.limit

    def depth(self) -> dict[Priority, int]:
        counts = dict.fromkeys(Priority, 0)
        for entry in self._entries:
            counts[entry.work.priority] += 1
        return counts

    def final_wait(self, window_s: float) -> float:
        """The longest FINAL work has waited within the last ``window_s``: what ran, and what
        still waits. Past a service time or two the workers cannot keep up with conversations."""
        now = self._clock()
        waiting = (now - e.enqueued for e in self._entries if e.work.priority is Priority.FINAL)
        ran = (wait for at, wait in self._recent if now - at <= window_s)
        return max(itertools.chain(waiting, ran), default=0.0)

    def push(self, item: T, work: Work, *, refusable: bool = False) -> Offer[T]:
        entry = Entry(item, work, refusable, self._clock(), next(self._seq))
        if len(self._entries) < self.limit:
            self._entries.append(entry)
            return Offer(True)
        victims = [e for e in self._entries if e.work.priority > work.priority]
        if victims:
            victim = max(victims, key=lambda e: (e.work.priority, -e.seq))
            self._entries.remove(victim)
            self._count_shed(victim, ShedReason.EVICTED)
            self._entries.append(entry)
            return Offer(True, [victim])
        if work.priority is Priority.FINAL and not refusable:
            self._entries.append(entry)
            return Offer(True)
        self._count_shed(entry, ShedReason.REFUSED)
        return Offer(False)

    def pop(self) -> tuple[Entry[T] | None, list[Entry[T]]]:
        """The next request to run (None when none waits), and the stale ones dropped on the way."""
        now = self._clock()
        stale = [e for e in self._entries if self._is_stale(e, now)]
        for entry in stale:
            self._entries.remove(entry)
            self._count_shed(entry, ShedReason.STALE)
        if not self._entries:
            return None, stale
        chosen = min(self._entries, key=lambda e: (e.work.priority, e.seq))
        self._entries.remove(chosen)
        wait = now - chosen.enqueued
        self.waits[chosen.work.priority].observe(wait)
        if chosen.work.priority is Priority.FINAL:
            self._recent.append((now, wait))
        return chosen, stale

    def remove(self, item: T) -> bool:
        """Take a request out (its caller gave up); False when it is not waiting."""
        for entry in self._entries:
            if entry.item is item:
                self._entries.remove(entry)
                return True
        return False

    def drain(self) -> list[T]:
        """Everything still waiting, in order; the line is left empty (shutdown)."""
        items = [e.item for e in sorted(self._entries, key=lambda e: (e.work.priority, e.seq))]
        self._entries.clear()
        return items

    def _is_stale(self, entry: Entry[T], now: float) -> bool:
        limit = self.stale_s.get(entry.work.priority)
        return limit is not None and now - entry.enqueued > limit

    def _count_shed(self, entry: Entry[T], reason: ShedReason) -> None:
        self.shed[(entry.work.priority, reason)] += 1
