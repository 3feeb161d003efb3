"""Conversation history: the last N exchanges, assistant turns cut to what the user heard."""

from __future__ import annotations

from dataclasses import dataclass

from hark.engines.base import ChatMessage


@dataclass(slots=True)
class _Entry:
    item_id: str
    message: ChatMessage


class History:
    def __init__(self, system_prompt: str, max_turns: int) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1 (the current exchange), not {max_turns}")
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self._entries: list[_Entry] = []

    def add(self, item_id: str, role: str, text: str) -> None:
        if role not in ("user", "assistant"):
            raise ValueError(f"unsupported role {role!r}")
        self._entries.append(_Entry(item_id, ChatMessage(role, text)))  # type: ignore[arg-type]
        self._trim()

    def replace(self, item_id: str, text: str) -> bool:
        """Replace an item's text (barge-in truncation); an emptied assistant item is removed."""
        for index, entry in enumerate(self._entries):
            if entry.item_id == item_id:
                if text:
                    entry.message = ChatMessage(entry.message.role, text)
                else:
                    del self._entries[index]
                return True
        return False

    def text_of(self, item_id: str) -> str | None:
        for entry in self._entries:
            if entry.item_id == item_id:
                return entry.message.content
        return None

    def entries(self) -> list[tuple[str, ChatMessage]]:
        return [(entry.item_id, entry.message) for entry in self._entries]

    def last_user_text(self) -> str | None:
        for entry in reversed(self._entries):
            if entry.message.role == "user":
                return entry.message.content
        return None

    def clear(self) -> None:
        self._entries.clear()

    def messages(
        self, instructions: str | None = None, *, pending_user: str | None = None
    ) -> list[ChatMessage]:
        """What the LLM is sent. ``pending_user``: a user message not yet added (a speculative
        reply), placed and trimmed as ``add`` would, without changing the history."""
        prompt = instructions or self.system_prompt
        system = [ChatMessage("system", prompt)] if prompt else []
        entries = self._entries
        if pending_user is not None:
            entries = _newest_turns([*entries, _Entry("", ChatMessage("user", pending_user))], self.max_turns)
        return system + [entry.message for entry in entries]

    def _trim(self) -> None:
        self._entries = _newest_turns(self._entries, self.max_turns)


def _newest_turns(entries: list[_Entry], max_turns: int) -> list[_Entry]:
    # A turn is a user message and what answered it; keep the newest max_turns of them.
    user_indexes = [i for i, e in enumerate(entries) if e.message.role == "user"]
    if len(user_indexes) > max_turns:
        return entries[user_indexes[-max_turns] :]
    return entries
