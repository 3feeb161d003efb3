"""Keypad digits into words for the conversation: a pure collector.

Digits pressed within ``gap_ms`` of each other make one entry; ``#`` ends an entry at once (and
is not part of it). Digits are what a caller types (account numbers, PINs): they are never
logged, only counted.
"""

from __future__ import annotations

MAX_DIGITS = 64


class DtmfCollector:
    def __init__(self, gap_ms: int) -> None:
        self.gap_s = gap_ms / 1000.0
        self._digits: list[str] = []
        self._last = 0.0
        self.received = 0

    def push(self, digit: str, now: float) -> str | None:
        """A digit arrived; returns a finished entry when ``#`` ends one."""
        self.received += 1
        self._last = now
        if digit == "#":
            return self.flush()
        if len(self._digits) < MAX_DIGITS:
            self._digits.append(digit.upper())
        return None

    def due(self, now: float) -> str | None:
        """The entry, once ``gap_ms`` has passed since its last digit."""
        if self._digits and now - self._last >= self.gap_s:
            return self.flush()
        return None

    def flush(self) -> str | None:
        digits, self._digits = "".join(self._digits), []
        return digits or None

    @property
    def waiting(self) -> bool:
        return bool(self._digits)


def as_text(digits: str) -> str:
    """How an entry reads in the conversation."""
    return f"[keypad] {digits}"
