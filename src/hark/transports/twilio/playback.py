"""Which reply audio the caller has heard, from the marks Twilio echoes back: a pure ledger.

hark sends a ``mark`` after each chunk of reply audio; Twilio echoes it once the audio before it
has played to the caller. So the newest mark echoed for an item is how much of that item was
heard. On a ``clear`` the marks still out are forgotten: Twilio may echo them as it empties its
buffer, and that audio was never played.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

MAX_PENDING = 4096
"""Marks out at once (100 ms of audio each: minutes of reply); the oldest are forgotten beyond."""
MAX_ITEMS = 16


@dataclass(frozen=True, slots=True)
class Pending:
    item_id: str
    end_ms: int
    """The item's audio sent when the mark was, in ms."""


class MarkLedger:
    def __init__(self, prefix: str = "hark") -> None:
        self._prefix = prefix
        self._counter = 0
        self._pending: collections.OrderedDict[str, Pending] = collections.OrderedDict()
        self._heard: collections.OrderedDict[str, int] = collections.OrderedDict()

    def sent(self, item_id: str, end_ms: int) -> str:
        """A mark goes out after ``end_ms`` of ``item_id``'s audio; returns its name."""
        self._counter += 1
        name = f"{self._prefix}-{self._counter}"
        self._pending[name] = Pending(item_id, end_ms)
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return name

    def played(self, name: str) -> Pending | None:
        """Twilio echoed ``name``: it, and every mark sent before it, has played. None for a
        name hark did not send or has forgotten (after a clear)."""
        if name not in self._pending:
            return None
        while self._pending:
            earlier, pending = self._pending.popitem(last=False)
            self._hear(pending)
            if earlier == name:
                return pending
        return None  # pragma: no cover - the name was in the dict

    def _hear(self, pending: Pending) -> None:
        self._heard[pending.item_id] = max(self._heard.get(pending.item_id, 0), pending.end_ms)
        self._heard.move_to_end(pending.item_id)
        while len(self._heard) > MAX_ITEMS:
            self._heard.popitem(last=False)

    def heard_ms(self, item_id: str) -> int:
        return self._heard.get(item_id, 0)

    @property
    def unplayed(self) -> bool:
        """Some audio sent has not been reported played yet."""
        return bool(self._pending)

    def unplayed_items(self) -> list[str]:
        return list(dict.fromkeys(p.item_id for p in self._pending.values()))

    def cleared(self) -> list[str]:
        """Twilio's buffer was cleared: forget the marks still out; returns their items."""
        items = self.unplayed_items()
        self._pending.clear()
        return items
