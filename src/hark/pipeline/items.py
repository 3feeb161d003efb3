"""The conversation's items in order, as the client sees them: messages, function calls and
their outputs. ``History`` is what the LLM is sent (the newest turns); this is the record a
client can retrieve, delete from and insert into, and what ``previous_item_id`` is read off."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Literal

from hark.pipeline.errors import DuplicateItem, UnknownItem

MAX_ITEMS = 512
"""Items remembered per conversation; the oldest are forgotten past this."""

ItemType = Literal["message", "function_call", "function_call_output"]
ItemStatus = Literal["completed", "in_progress", "incomplete"]


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    type: ItemType
    role: Literal["user", "assistant", "system"] | None = None
    text: str | None = None
    """A message's text (its transcript when it was audio; None while not known yet)."""
    audio: bool = False
    """The message was spoken (input or output audio) rather than written."""
    status: ItemStatus = "completed"
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None

    def with_(self, **changes: object) -> Item:
        return replace(self, **changes)  # type: ignore[arg-type]


class ItemLog:
    def __init__(self, limit: int = MAX_ITEMS) -> None:
        self._items: OrderedDict[str, Item] = OrderedDict()
        self._limit = limit

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def last_id(self) -> str | None:
        return next(reversed(self._items), None)

    def add(self, item: Item, *, after: str | None = None) -> str | None:
        """Append ``item`` (or insert it after ``after``; ``"root"``: first). Returns the id of the
        item now before it. Raises DuplicateItem or UnknownItem."""
        if item.id in self._items:
            raise DuplicateItem(f"an item with id {item.id[:64]!r} already exists")
        if after is not None and after != "root" and after not in self._items:
            raise UnknownItem(f"no item {after[:64]!r} to insert after", param="previous_item_id")
        if after is None or after == self.last_id:
            previous = self.last_id
            self._items[item.id] = item
        else:
            entries = list(self._items.items())
            index = 0 if after == "root" else [k for k, _ in entries].index(after) + 1
            previous = entries[index - 1][0] if index else None
            entries.insert(index, (item.id, item))
            self._items = OrderedDict(entries)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)
        return previous

    def update(self, item: Item) -> None:
        if item.id in self._items:
            self._items[item.id] = item

    def get(self, item_id: str) -> Item:
        try:
            return self._items[item_id]
        except KeyError:
            raise UnknownItem(f"no item {item_id[:64]!r} in this conversation") from None

    def remove(self, item_id: str) -> Item:
        item = self.get(item_id)
        del self._items[item_id]
        return item

    def find_call(self, call_id: str) -> Item | None:
        for item in reversed(self._items.values()):
            if item.type == "function_call" and item.call_id == call_id:
                return item
        return None

    def has_output_for(self, call_id: str) -> bool:
        return any(i.type == "function_call_output" and i.call_id == call_id for i in self._items.values())

    def items(self) -> list[Item]:
        return list(self._items.values())
