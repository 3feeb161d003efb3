"""Session state, resume tokens and shared rate limits: in memory (the default, one instance) or in
Redis (``redis.url`` set: shared by every hark instance using it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hark.errors import MissingDependency
from hark.sessionstore.memory import MemorySessionStore
from hark.sessionstore.store import HistoryEntry, SessionState, SessionStore, StoreUnavailable

if TYPE_CHECKING:
    from hark.config import Settings

__all__ = [
    "HistoryEntry",
    "MemorySessionStore",
    "SessionState",
    "SessionStore",
    "StoreUnavailable",
    "build_store",
]

REDIS_REQUIREMENT = "redis>=5.0.1,<9"


def build_store(settings: Settings) -> SessionStore:
    """The store ``settings.redis`` asks for. Connects lazily: call ``await store.ping()`` at
    start-up to fail early (it raises StoreUnavailable with the reason)."""
    redis = settings.redis
    if redis.url is None or not redis.url.get_secret_value():
        return MemorySessionStore(state_ttl_s=redis.resume_ttl_s)
    try:
        from hark.sessionstore.redis_store import RedisSessionStore
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "redis":
            raise
        raise MissingDependency("redis", f"pip install '{REDIS_REQUIREMENT}'") from None
    return RedisSessionStore(
        redis.url.get_secret_value(),
        key_prefix=redis.key_prefix,
        state_ttl_s=redis.resume_ttl_s,
        timeout_s=redis.timeout_s,
    )
