"""Fault injection for loopback provider servers: one vocabulary for every wire format."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Fault(enum.Enum):
    NONE = "none"
    STALL = "stall"
    """Accept the request (or connection) and never answer."""
    HTTP_500 = "http_500"
    HTTP_429 = "http_429"
    """429 with a Retry-After header of ``retry_after`` seconds."""
    MALFORMED = "malformed"
    """A stream that starts well, then sends bytes that are not the wire format."""
    DISCONNECT = "disconnect"
    """Send part of the stream, then drop the connection."""
    SLOW_FIRST_BYTE = "slow_first_byte"
    """Answer correctly, but only after ``delay`` seconds."""


@dataclass
class FaultPlan:
    fault: Fault = Fault.NONE
    times: int | None = None
    """How many requests the fault applies to; None for all of them."""
    delay: float = 0.0
    retry_after: float = 1.0
    requests: int = 0
    """Requests seen, faulty or not."""

    def take(self) -> Fault:
        """The fault for the request arriving now."""
        self.requests += 1
        if self.fault is Fault.NONE:
            return Fault.NONE
        if self.times is None:
            return self.fault
        if self.times > 0:
            self.times -= 1
            return self.fault
        return Fault.NONE

    def set(
        self, fault: Fault, *, times: int | None = None, delay: float = 0.0, retry_after: float = 1.0
    ) -> None:
        self.fault, self.times, self.delay, self.retry_after = fault, times, delay, retry_after
