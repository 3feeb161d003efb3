"""What a session store keeps and the interface every store implements.

A store holds three kinds of short-lived records, each with an expiry:

* a session's state (history, instructions, turn detection), which lives ``state_ttl_s`` after its
  last save, so a disconnected session can be resumed for that long;
* resume tokens: opaque, random, single use, each naming one session. A session has at most one
  live token (issuing a new one revokes the previous), and every save of the session extends its
  live token to the state's lifetime, so the token stays good as long as the state does;
* fixed-window rate-limit counters, shared by every hark instance using the same store.

The in-memory store (one instance) is the default; the Redis store shares all three across instances.
Every store call either completes or raises :class:`StoreUnavailable`; none hangs.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from hark.errors import HarkError

MAX_SESSION_ID = 128
MAX_RATE_KEY = 512
TOKEN_BYTES = 32
"""Resume tokens carry 256 random bits (43 URL-safe base64 characters)."""
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class StoreUnavailable(HarkError):
    """The session store cannot be reached or did not answer in time.

    The operation was not done (or its outcome is unknown); the store itself is still usable and
    the next call tries again, so there is nothing to rebuild when the store comes back."""

    def __init__(self, message: str, *, operation: str = "") -> None:
        super().__init__(message)
        self.operation = operation


class HistoryEntry(BaseModel):
    """One conversation item, as ``hark.pipeline.history.History`` holds it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    item_id: str = Field(min_length=1, max_length=256)
    role: Literal["user", "assistant"]
    content: str


class SessionState(BaseModel):
    """What a Realtime session needs to continue elsewhere. Stored as JSON; unknown fields are
    ignored so instances of different versions can share a store during a rolling upgrade."""

    model_config = ConfigDict(extra="ignore")

    version: int = 1
    history: list[HistoryEntry] = Field(default_factory=list)
    """Oldest first, already trimmed to the configured number of turns."""
    instructions: str | None = None
    """Set by ``session.update`` / ``response.create``; None: the configured system prompt."""
    turn_detection: dict[str, Any] | None = Field(default_factory=dict)
    """The session's ``audio.input.turn_detection`` as the session object shows it (wire form);
    ``{}``: the server's defaults; None: turn detection is off (push-to-talk)."""
    updated_at: float = 0.0
    """Unix time of the last save; stamped by the store."""
    owner: str | None = None
    """The tenant whose credential created the session (see :class:`hark.sessionstore.resume.OwnedStore`);
    only that tenant can resume it."""


@runtime_checkable
class SessionStore(Protocol):
    """Session state, resume tokens and shared rate limits. Every method raises
    :class:`StoreUnavailable` when the backing service is down or slow; none blocks longer than the
    store's timeout."""

    async def save(self, session_id: str, state: SessionState) -> None:
        """Store (replace) a session's state; it expires ``state_ttl_s`` from now. Extends the
        session's live resume token, if any, to the same expiry."""
        ...

    async def load(self, session_id: str) -> SessionState | None:
        """The session's last saved state; None when unknown or expired."""
        ...

    async def issue_resume_token(self, session_id: str, ttl_s: float) -> str:
        """A new opaque token naming the session, valid for ``ttl_s`` (or until the session's
        next save extends it). Revokes the session's previous token."""
        ...

    async def redeem(self, token: str) -> str | None:
        """The session id the token names, once: the token is used up. None when the token is
        unknown, malformed, already used, revoked or expired."""
        ...

    async def delete(self, session_id: str) -> None:
        """Forget the session's state and revoke its token. Unknown ids are fine."""
        ...

    async def ping(self) -> None:
        """Return when the store answers; raise StoreUnavailable otherwise."""
        ...

    async def hit(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        """Count one event against ``key``: at most ``limit`` per fixed window of ``window_s``
        seconds, the window starting at the first event. Returns (allowed, retry_after_s);
        retry_after_s is 0 when allowed. Keys are hashed before they are stored."""
        ...

    async def aclose(self) -> None:
        """Release connections; idempotent."""
        ...


# -- helpers shared by the implementations --------------------------------------------------------


def check_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not session_id or len(session_id) > MAX_SESSION_ID:
        raise ValueError(f"session id must be 1 to {MAX_SESSION_ID} characters")
    return session_id


def check_ttl(ttl_s: float, name: str = "ttl_s") -> float:
    if not ttl_s > 0:
        raise ValueError(f"{name} must be positive, not {ttl_s!r}")
    return float(ttl_s)


def check_rate(key: str, limit: int, window_s: float) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_RATE_KEY:
        raise ValueError(f"rate-limit key must be 1 to {MAX_RATE_KEY} characters")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    check_ttl(window_s, "window_s")


def token_digest(token: str) -> str | None:
    """What a token is stored under (its SHA-256), or None when it cannot be one of ours: the
    token itself never appears in the store, its key names or its logs."""
    if not isinstance(token, str) or not _TOKEN_SHAPE.fullmatch(token):
        return None
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def key_digest(key: str) -> str:
    """Rate-limit keys may hold client addresses or key fingerprints: store a digest instead."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
