"""Resuming a Realtime session: snapshots, the take-over of a session on reconnect, and saves that
stay off the audio path.

The flow, with any store (the Redis one makes it work across instances):

1. On connect, a fresh session gets a token: ``await issue(store, session.id, ttl)``; the transport
   sends it to the client (``hark.resume_token``).
2. While the session runs, a :class:`Checkpointer` saves its state after each change (a finished
   turn, ``session.update``, a truncation, a created item). Saves are coalesced and never awaited
   by the conversation; each also extends the session's live token.
3. On disconnect the transport calls ``await checkpointer.flush()`` so the last change is kept; the
   session can then be resumed for ``resume_ttl_s``.
4. A reconnecting client presents its token; :func:`resume` redeems it (single use), moves the state
   to the new connection's session id, deletes the old one and issues the next token. The old id is
   dead afterwards, so a late save by the old connection (say, a half-open socket on another
   instance that notices the disconnect only later) cannot overwrite the resumed conversation.

A token is bound to the tenant whose credential created the session: each connection sees the
store through an :class:`OwnedStore`, which stamps its tenant on every save and does not see
states of any other tenant, so a token presented by another tenant resumes nothing (it is used up,
and the client is told it is unknown, exactly as for a made-up one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hark.engines.base import ChatMessage
from hark.pipeline.history import History
from hark.sessionstore.store import HistoryEntry, SessionState, SessionStore, StoreUnavailable

log = logging.getLogger("hark.state")


@dataclass(frozen=True, slots=True)
class ResumeToken:
    token: str
    expires_at: float
    """Unix time the token expires unless a later save of the session extends it."""


@dataclass(frozen=True, slots=True)
class Resumed:
    previous_session_id: str
    session_id: str
    state: SessionState
    token: ResumeToken
    """The next token, for the resumed session."""


def snapshot(
    entries: Iterable[tuple[str, ChatMessage]],
    *,
    instructions: str | None = None,
    turn_detection: dict[str, Any] | None = None,
) -> SessionState:
    """A session's state from its history entries (item id, message); system and tool messages
    are not history and are skipped. ``turn_detection`` is the wire form (None: off)."""
    history = [
        HistoryEntry(item_id=item_id, role=message.role, content=message.content)
        for item_id, message in entries
        if message.role in ("user", "assistant")
    ]
    return SessionState(history=history, instructions=instructions, turn_detection=turn_detection)


def restore_history(state: SessionState, history: History) -> None:
    """Replace ``history``'s entries with the saved ones (trimmed to its own max_turns)."""
    history.clear()
    for entry in state.history:
        history.add(entry.item_id, entry.role, entry.content)


async def issue(store: SessionStore, session_id: str, ttl_s: float) -> ResumeToken:
    """A new token for the session (revoking its previous one)."""
    token = await store.issue_resume_token(session_id, ttl_s)
    return ResumeToken(token, time.time() + ttl_s)


async def resume(store: SessionStore, token: str, *, new_session_id: str, ttl_s: float) -> Resumed | None:
    """Take over the session ``token`` names: its state moves to ``new_session_id``, which gets the
    next token. None when the token is unknown, used, revoked or expired, or its state expired.
    Raises StoreUnavailable (the token may then be used up: the client starts afresh)."""
    previous = await store.redeem(token)
    if previous is None:
        return None
    state = await store.load(previous)
    if state is None:
        return None
    await store.save(new_session_id, state)
    next_token = await issue(store, new_session_id, ttl_s)
    if previous != new_session_id:
        await store.delete(previous)
    return Resumed(previous, new_session_id, state, next_token)


class OwnedStore:
    """A :class:`SessionStore` as one tenant sees it: its saves are stamped with ``owner``, and
    states saved by anyone else load as None. Everything else passes through."""

    def __init__(self, store: SessionStore, owner: str) -> None:
        self.store = store
        self.owner = owner

    async def save(self, session_id: str, state: SessionState) -> None:
        await self.store.save(session_id, state.model_copy(update={"owner": self.owner}))

    async def load(self, session_id: str) -> SessionState | None:
        state = await self.store.load(session_id)
        if state is None or state.owner != self.owner:
            return None
        return state

    async def issue_resume_token(self, session_id: str, ttl_s: float) -> str:
        return await self.store.issue_resume_token(session_id, ttl_s)

    async def redeem(self, token: str) -> str | None:
        return await self.store.redeem(token)

    async def delete(self, session_id: str) -> None:
        await self.store.delete(session_id)

    async def ping(self) -> None:
        await self.store.ping()

    async def hit(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        return await self.store.hit(key, limit, window_s)

    async def aclose(self) -> None:
        """The shared store is closed by its owner (the app), not by one session's view."""


class Checkpointer:
    """Saves one session's state in the background. :meth:`request` never blocks: at most one save
    is in flight, the snapshot is taken when the save starts (so the newest state wins), and
    requests made meanwhile are folded into one more save. A failed save is retried on the next
    request or :meth:`flush`; ``on_error`` hears each failure (say, to tell the client that resume
    is unavailable), ``healthy`` says how the last save went."""

    def __init__(
        self,
        store: SessionStore,
        session_id: str,
        snapshot: Callable[[], SessionState],
        *,
        on_error: Callable[[StoreUnavailable], None] | None = None,
    ) -> None:
        self.store = store
        self.session_id = session_id
        """Rebind after a resume, before the next request."""
        self._snapshot = snapshot
        self._on_error = on_error
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self.healthy = True
        self.saves = 0
        self.failures = 0

    def request(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"checkpoint {self.session_id}")

    async def flush(self) -> None:
        """Wait for the save in flight, then save once more if anything is still unsaved (a change
        since, or a failed save). Errors go to ``on_error``, never raised."""
        if self._task is not None:
            await self._task
        if self._dirty:
            self._task = asyncio.create_task(self._run(), name=f"checkpoint {self.session_id}")
            await self._task

    async def _run(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self.store.save(self.session_id, self._snapshot())
            except StoreUnavailable as exc:
                self._dirty = True
                self.failures += 1
                if self.healthy:
                    log.warning("session %s: state not saved: %s", self.session_id, exc)
                self.healthy = False
                if self._on_error is not None:
                    self._on_error(exc)
                return
            except Exception:
                self.failures += 1
                self.healthy = False
                log.exception("session %s: state not saved", self.session_id)
                return
            self.saves += 1
            if not self.healthy:
                log.info("session %s: state saved again", self.session_id)
            self.healthy = True
