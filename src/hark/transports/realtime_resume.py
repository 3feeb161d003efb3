"""hark's addition to the Realtime protocol: resuming a disconnected session (``hark.resume``,
``hark.resume_token``, ``hark.resumed``). The socket-free half of the handshake; the flow is
described in ``hark.sessionstore.resume``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hark.engines.base import ChatMessage
from hark.pipeline.conversation import Conversation
from hark.sessionstore import SessionState, SessionStore, StoreUnavailable
from hark.sessionstore.resume import Checkpointer, ResumeToken, issue, resume, snapshot
from hark.transports import realtime_protocol as rp

log = logging.getLogger("hark.realtime")


@dataclass(frozen=True, slots=True)
class Restored:
    previous_session_id: str
    items: int
    turn_detection: dict[str, Any] | None
    token: ResumeToken


class ResumeHandshake:
    def __init__(
        self,
        store: SessionStore,
        session_id: str,
        ttl_s: float,
        state: Callable[[], SessionState],
        on_error: Callable[[StoreUnavailable], None],
    ) -> None:
        self._store = store
        self._session_id = session_id
        self._ttl_s = ttl_s
        self.checkpointer = Checkpointer(store, session_id, state, on_error=on_error)

    async def offer(self) -> ResumeToken:
        """A token for this new session; raises StoreUnavailable."""
        token = await issue(self._store, self._session_id, self._ttl_s)
        self.checkpointer.request()  # so even a session that ends before its first turn can be resumed
        return token

    async def take_over(self, event: rp.Resume, conversation: Conversation) -> Restored:
        """Redeem ``event.token`` into ``conversation``; raises ProtocolError when it cannot."""
        try:
            resumed = await resume(
                self._store, event.token, new_session_id=self._session_id, ttl_s=self._ttl_s
            )
        except StoreUnavailable as exc:
            raise rp.ProtocolError(
                str(exc), code="session_store_unavailable", type="server_error", event_id=event.event_id
            ) from None
        if resumed is None:
            raise rp.ProtocolError(
                "the resume token is unknown, used or expired; this is a new session",
                code="resume_token_invalid",
                event_id=event.event_id,
            )
        entries = [(e.item_id, ChatMessage(e.role, e.content)) for e in resumed.state.history]
        conversation.restore(entries, resumed.state.instructions)
        log.info("session resumed", extra={"session": self._session_id, "items": len(entries)})
        return Restored(
            resumed.previous_session_id, len(entries), resumed.state.turn_detection, resumed.token
        )


def state_of(conversation: Conversation, turn_detection: dict[str, Any] | None) -> SessionState:
    """What is saved: the conversation's words (function calls and their results stay with the
    connection that made them: a resumed session starts without open calls)."""
    words = [(i, m) for i, m in conversation.history.entries() if not m.tool_calls and m.role != "tool"]
    return snapshot(words, instructions=conversation.instructions, turn_detection=turn_detection)
