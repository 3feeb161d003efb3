"""Messages waiting for Twilio's socket, at most ``limit_bytes`` of them (security.limits'
OutboundBudget): reply audio over the budget is dropped, oldest queued audio first; when control
messages alone exceed it, ``overflow`` is set and the call is closed. A barge-in drops the reply
audio still queued here (Twilio's own buffer is emptied with ``clear``)."""

from __future__ import annotations

import asyncio
import collections

from hark.security import OutboundBudget, Verdict


class Outbox:
    def __init__(self, limit_bytes: int) -> None:
        self._items: collections.deque[tuple[str | None, str]] = collections.deque()
        self._ready = asyncio.Event()
        self.budget = OutboundBudget(limit_bytes)
        self.overflow = asyncio.Event()

    def put(self, message: str, *, audio_of: str | None = None) -> None:
        """Queue ``message``; ``audio_of``: the response whose reply audio it is (droppable)."""
        verdict = self.budget.offer(len(message), audio=audio_of is not None)
        if verdict is Verdict.DROP:
            return
        if verdict is Verdict.CLOSE:
            self.overflow.set()
            return
        self._items.append((audio_of, message))
        while self.budget.excess and self._evict_oldest_audio():
            pass
        self._ready.set()

    def _evict_oldest_audio(self) -> bool:
        for index, (response_id, message) in enumerate(self._items):
            if response_id is not None:
                del self._items[index]
                self.budget.discard(len(message), audio=True)
                return True
        return False

    def drop_audio(self, response_id: str) -> int:
        kept = collections.deque(item for item in self._items if item[0] != response_id)
        for audio_of, message in self._items:
            if audio_of == response_id:
                self.budget.sent(len(message), audio=True)
        dropped = len(self._items) - len(kept)
        self._items = kept
        return dropped

    @property
    def pending(self) -> int:
        return len(self._items)

    async def get(self) -> tuple[str | None, str]:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        audio_of, message = self._items.popleft()
        self.budget.sent(len(message), audio=audio_of is not None)
        return audio_of, message
