"""The default session store: in this process only, with the same expiry rules as Redis."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from hark.sessionstore.store import (
    TOKEN_BYTES,
    SessionState,
    check_rate,
    check_session_id,
    check_ttl,
    key_digest,
    token_digest,
)

_V = TypeVar("_V")

SWEEP_INTERVAL_S = 5.0


class MemorySessionStore:
    """A :class:`~hark.sessionstore.store.SessionStore` in a few dicts. Every method is synchronous under
    the hood (no await inside), so each is atomic on the event loop. States are kept as JSON, as
    Redis keeps them, so a saved state is a copy and must serialise."""

    def __init__(self, *, state_ttl_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.state_ttl_s = check_ttl(state_ttl_s, "state_ttl_s")
        self._clock = clock
        self._states: dict[str, tuple[float, str]] = {}
        self._tokens: dict[str, tuple[float, str]] = {}
        """token digest -> (expires, session id)"""
        self._current: dict[str, tuple[float, str]] = {}
        """session id -> (expires, digest of its live token)"""
        self._counters: dict[str, tuple[float, int]] = {}
        self._next_sweep = clock() + SWEEP_INTERVAL_S

    async def save(self, session_id: str, state: SessionState) -> None:
        check_session_id(session_id)
        now = self._now()
        expires = now + self.state_ttl_s
        stamped = state.model_copy(update={"updated_at": time.time()})
        self._states[session_id] = (expires, stamped.model_dump_json())
        current = self._live(self._current, session_id, now)
        if current is not None:
            self._current[session_id] = (expires, current)
            if current in self._tokens:
                self._tokens[current] = (expires, session_id)

    async def load(self, session_id: str) -> SessionState | None:
        check_session_id(session_id)
        data = self._live(self._states, session_id, self._now())
        return None if data is None else SessionState.model_validate_json(data)

    async def issue_resume_token(self, session_id: str, ttl_s: float) -> str:
        check_session_id(session_id)
        expires = self._now() + check_ttl(ttl_s)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = token_digest(token)
        assert digest is not None
        previous = self._current.get(session_id)
        if previous is not None:
            self._tokens.pop(previous[1], None)
        self._tokens[digest] = (expires, session_id)
        self._current[session_id] = (expires, digest)
        return token

    async def redeem(self, token: str) -> str | None:
        digest = token_digest(token)
        if digest is None:
            return None
        now = self._now()
        session_id = self._live(self._tokens, digest, now)
        self._tokens.pop(digest, None)
        return session_id

    async def delete(self, session_id: str) -> None:
        check_session_id(session_id)
        self._states.pop(session_id, None)
        current = self._current.pop(session_id, None)
        if current is not None:
            self._tokens.pop(current[1], None)

    async def ping(self) -> None:
        return None

    async def hit(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        check_rate(key, limit, window_s)
        now = self._now()
        digest = key_digest(key)
        entry = self._counters.get(digest)
        if entry is None or entry[0] <= now:
            entry = (now + window_s, 0)
        expires, count = entry[0], entry[1] + 1
        self._counters[digest] = (expires, count)
        if count <= limit:
            return True, 0.0
        return False, max(0.0, expires - now)

    async def aclose(self) -> None:
        return None

    def __len__(self) -> int:
        """Live records of every kind (for tests and the admin view)."""
        now = self._now()
        return sum(
            _count_live(table, now) for table in (self._states, self._tokens, self._current, self._counters)
        )

    # -- expiry ------------------------------------------------------------------------------

    def _now(self) -> float:
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL_S
            _sweep(self._states, now)
            _sweep(self._tokens, now)
            _sweep(self._current, now)
            _sweep(self._counters, now)
        return now

    @staticmethod
    def _live(table: dict[str, tuple[float, _V]], key: str, now: float) -> _V | None:
        entry = table.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del table[key]
            return None
        return entry[1]


def _sweep(table: dict[str, tuple[float, _V]], now: float) -> None:
    for key in [key for key, (expires, _) in table.items() if expires <= now]:
        del table[key]


def _count_live(table: Mapping[str, tuple[float, object]], now: float) -> int:
    return sum(1 for expires, _ in table.values() if expires > now)
