"""What a fallback chain knows about each provider: why an attempt failed, the circuit breaker
that skips a failing provider, the provider's counters and its status for the admin API."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hark.config import ProviderConfig
from hark.engines.base import LLM, STT, TTS
from hark.errors import EngineError, EngineSaturated, EngineUnavailable

E = TypeVar("E", LLM, STT, TTS)


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, EngineSaturated):
        return "saturated"
    if isinstance(exc, EngineUnavailable):
        return "unavailable"
    if isinstance(exc, EngineError):
        return "retryable" if exc.retryable else "final"
    return "error"


@dataclass
class Tally:
    """What one request's failed attempts said: (provider, reason, message), and the longest
    Retry-After among them."""

    errors: list[tuple[str, str, str]] = field(default_factory=list)
    wait_hint: float | None = None

    def add(self, label: str, exc: BaseException) -> None:
        self.errors.append((label, failure_reason(exc), str(exc)))
        if isinstance(exc, EngineError) and exc.retry_after is not None:
            self.wait_hint = max(self.wait_hint or 0.0, exc.retry_after)


class CircuitBreaker:
    """Closed until ``threshold`` consecutive failures (or one stall); then open until reset."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.consecutive_failures = 0
        self.is_open = False
        self.opened_at: float | None = None

    def success(self) -> None:
        self.consecutive_failures = 0
        self.is_open = False
        self.opened_at = None

    def failure(self, *, stalled: bool = False) -> bool:
        """Record a failure; True when this one opened the circuit."""
        self.consecutive_failures += 1
        if not self.is_open and (stalled or self.consecutive_failures >= self.threshold):
            self.is_open = True
            self.opened_at = time.monotonic()
            return True
        return False


@dataclass
class ProviderStats:
    attempts: int = 0
    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    saturated: int = 0
    """Attempts it refused for load (not failures: the circuit stays closed)."""
    spilled: int = 0
    """Of those, requests sent on to the next provider (``spill_over``)."""
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    """Seconds to the first token/byte/result of successful attempts, newest last."""


@dataclass
class Provider(Generic[E]):
    label: str
    engine: E
    config: ProviderConfig
    breaker: CircuitBreaker
    stats: ProviderStats = field(default_factory=ProviderStats)

    def status(self) -> dict[str, Any]:
        latencies = sorted(self.stats.latencies)
        return {
            "name": self.label,
            "kind": self.config.kind,
            "circuit": "open" if self.breaker.is_open else "closed",
            "attempts": self.stats.attempts,
            "successes": self.stats.successes,
            "failures": dict(self.stats.failures),
            "saturated": self.stats.saturated,
            "spilled": self.stats.spilled,
            "latency_p50_s": latencies[len(latencies) // 2] if latencies else None,
        }
