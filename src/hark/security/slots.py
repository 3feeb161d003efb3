"""Places for connections: the session cap, and the small budget of sockets still waiting to
authenticate (per client address and in all)."""

from __future__ import annotations


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
