"""The conversation's record: its items in order (what a client sees, retrieves and deletes,
and what ``previous_item_id`` is read off) and the history the LLM is sent (the newest turns),
kept in step. Every change to either goes through here."""

from __future__ import annotations

from typing import Literal

from hark.engines.base import ChatMessage, ToolCall
from hark.pipeline.errors import UnknownCall
from hark.pipeline.history import History
from hark.pipeline.items import Item, ItemLog
from hark.pipeline.options import as_message


class Record:
    def __init__(self, system_prompt: str, history_turns: int) -> None:
        self.items = ItemLog()
        self.history = History(system_prompt, history_turns)
        self._heard: dict[str, str] = {}
        """Replies a client truncated while they were still being said (a paused reply): what
        it heard stands when the reply ends."""

    def user_audio(self, item_id: str) -> str | None:
        """A committed user turn, its words still to come. Returns the item before it."""
        return self.items.add(Item(item_id, "message", role="user", audio=True))

    def user_transcript(self, item_id: str, text: str) -> None:
        if item_id not in self.items:
            return  # deleted by the client meanwhile
        self.items.update(self.items.get(item_id).with_(text=text))
        if text:
            self.history.add(item_id, "user", text)

    def open_reply(self, item_id: str, *, audio: bool) -> str | None:
        return self.items.add(Item(item_id, "message", role="assistant", audio=audio, status="in_progress"))

    def reply_done(self, item: Item) -> None:
        heard = self._heard.pop(item.id, None)
        if item.id not in self.items:
            return  # deleted while it was being said
        if heard is not None:  # truncated by the client before it ended: already in the history
            self.items.update(item.with_(text=heard, status="incomplete"))
            return
        self.items.update(item)
        if item.text:
            self.history.add(item.id, "assistant", item.text)

    def truncated(self, item_id: str, heard: str) -> None:
        if item_id in self.items and self.items.get(item_id).status == "in_progress":
            self._heard[item_id] = heard
        if not self.history.replace(item_id, heard) and heard:
            self.history.add(item_id, "assistant", heard)
        if item_id in self.items:
            self.items.update(self.items.get(item_id).with_(text=heard, status="incomplete"))

    def called(self, item: Item, call: ToolCall) -> str | None:
        previous = self.items.add(item)
        self.history.add_message(item.id, ChatMessage("assistant", "", tool_calls=(call,)))
        return previous

    def add(self, item: Item, *, after: str | None = None) -> str | None:
        """A client's item. Raises DuplicateItem, UnknownItem (``after``) or UnknownCall."""
        if item.type == "function_call_output" and self.items.find_call(item.call_id or "") is None:
            raise UnknownCall(
                f"no function call with call_id {str(item.call_id)[:64]!r} in this conversation"
            )
        previous = self.items.add(item, after=after)
        if (message := as_message(item)) is not None:
            self.history.add_message(item.id, message, after=after)
        return previous

    def get(self, item_id: str) -> Item:
        return self.items.get(item_id)

    def delete(self, item_id: str) -> None:
        self.items.remove(item_id)
        self.history.remove(item_id)

    def context(self, entries: tuple[Item | str, ...], instructions: str | None) -> list[ChatMessage]:
        """What an out-of-band response with ``input`` answers: those items (ids name items of
        the conversation; UnknownItem if not), after the instructions."""
        messages = []
        for entry in entries:
            item = self.items.get(entry) if isinstance(entry, str) else entry
            if (message := as_message(item)) is not None:
                messages.append(message)
        return self.history.framed(instructions, messages)

    def restore(self, entries: list[tuple[str, ChatMessage]]) -> None:
        self.history.clear()
        self.items = ItemLog()
        for item_id, message in entries:
            self.history.add_message(item_id, message)
            role: Literal["user", "assistant"] = "assistant" if message.role == "assistant" else "user"
            self.items.add(Item(item_id, "message", role=role, text=message.content))
