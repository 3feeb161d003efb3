"""One bounded outbox for every WebSocket endpoint: what the server has to say, serialized,
waiting for the socket. One slow-client policy for all of them: reply audio over the budget is
dropped (oldest queued audio first makes room for control events); when control events alone
exceed it, ``overflow`` is set and the session closes. Nothing is ever queued without bound.

A producer that would rather wait than lose audio (a TTS session: the audio is the product)
awaits ``room()`` before each piece, so a slow reader slows it down instead.

Control events may be handed over unmade (``put_later``): they are made (encoded, serialized)
when the writer next takes from the outbox, after the work started in the same moment, or
before anything is queued directly (the order is kept)."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from typing import Any

from hark.security import OutboundBudget, Verdict

LATER_LIMIT = 64
"""Unmade events that may wait for the writer; beyond it they are made at once (a writer stuck
on a slow reader must not let them pile up uncounted by the budget)."""


class Outbox:
    def __init__(
        self,
        limit_bytes: int = 256 * 1024,
        *,
        event_ids: bool = True,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self._on_drop = on_drop
        """Told the size of each piece of reply audio dropped for a slow reader."""
        self._items: collections.deque[tuple[str | None, str | bytes]] = collections.deque()
        self._ready = asyncio.Event()
        self._roomy = asyncio.Event()
        self._roomy.set()
        self._counter = 0
        self._event_ids = event_ids
        self.budget = OutboundBudget(limit_bytes)
        self.overflow = asyncio.Event()
        self._later: collections.deque[Callable[[], None]] = collections.deque()
        self._making = False

    def put_later(self, make: Callable[[], None]) -> None:
        """Control events made by ``make`` (which queues them with ``put``) when the writer next
        takes from the outbox. At a turn's end that is after the transcript and the reply have
        started, so their encoding no longer delays the LLM's request (docs/benchmarks.md)."""
        self._later.append(make)
        if len(self._later) > LATER_LIMIT:
            self._make_later()
        self._ready.set()

    def _make_later(self) -> None:
        if self._making:
            return  # put() from inside a ``make``: queued in its place
        self._making = True
        try:
            while self._later:
                self._later.popleft()()
        finally:
            self._making = False

    def put(self, event: dict[str, Any], *, audio_of: str | None = None) -> None:
        """A JSON event (given an ``event_id`` here, when the protocol has them); ``audio_of``:
        reply audio of that response, which may be dropped."""
        self._make_later()  # events handed over before this one go first
        if self._event_ids:
            self._counter += 1
            event["event_id"] = f"event_{self._counter}"
        self._queue(json.dumps(event, separators=(",", ":")), audio_of)

    async def room(self) -> None:
        """Wait until at most half the budget is queued."""
        while self.budget.queued > self.budget.limit // 2:
            self._roomy.clear()
            await self._roomy.wait()

    def put_audio(self, pcm: bytes, *, audio_of: str) -> None:
        """Reply audio as one binary frame (no event, so no event_id)."""
        self._make_later()
        self._queue(pcm, audio_of)

    def _queue(self, message: str | bytes, audio_of: str | None) -> None:
        verdict = self.budget.offer(len(message), audio=audio_of is not None)
        if verdict is Verdict.DROP:
            if self._on_drop is not None:
                self._on_drop(len(message))
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
                if self._on_drop is not None:
                    self._on_drop(len(message))
                return True
        return False

    def drop_audio(self, response_id: str) -> int:
        kept: collections.deque[tuple[str | None, str | bytes]] = collections.deque()
        for item in self._items:
            if item[0] == response_id:
                self.budget.sent(len(item[1]), audio=True)
            else:
                kept.append(item)
        dropped = len(self._items) - len(kept)
        self._items = kept
        if self.budget.queued <= self.budget.limit // 2:
            self._roomy.set()
        return dropped

    @property
    def pending(self) -> int:
        return len(self._items) + len(self._later)

    async def get(self) -> str | bytes:
        while not self._items:
            while not self._items and not self._later:
                self._ready.clear()
                await self._ready.wait()
            if not self.budget.audio:
                # Woken by control events alone: one loop pass more, so that the tasks started
                # in the same moment run before the socket writes. At a turn's end those are the
                # transcript and the reply, whose LLM request then goes out before the turn's
                # first four events are written, not after (docs/benchmarks.md, entry 31).
                # Reply audio, which the listener waits for, goes at once. (Control events are
                # never dropped, so they are still here after the pass.)
                await asyncio.sleep(0)
            self._make_later()  # may make nothing: an event this client does not get
        audio_of, message = self._items.popleft()
        self.budget.sent(len(message), audio=audio_of is not None)
        if self.budget.queued <= self.budget.limit // 2:
            self._roomy.set()
        return message
