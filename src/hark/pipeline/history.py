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
        self.add_message(item_id, ChatMessage(role, text))  # type: ignore[arg-type]

    def add_message(self, item_id: str, message: ChatMessage, *, after: str | None = None) -> None:
        """Append a message (a function call is an assistant message with ``tool_calls``, its
        output a ``tool`` message); ``after``: insert it after that item (``"root"``: first),
        appended when that item is not (or no longer) here."""
        entry = _Entry(item_id, message)
        ids = [e.item_id for e in self._entries]
        if after == "root":
            self._entries.insert(0, entry)
        elif after is not None and after in ids:
            self._entries.insert(ids.index(after) + 1, entry)
        else:
            self._entries.append(entry)
        self._trim()

    def remove(self, item_id: str) -> bool:
        before = len(self._entries)
        self._entries = [e for e in self._entries if e.item_id != item_id]
        return len(self._entries) != before

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
        return system + _merge_calls([entry.message for entry in entries])

    def framed(self, instructions: str | None, messages: list[ChatMessage]) -> list[ChatMessage]:
        """``messages`` (not the history) as the LLM is sent them: after the system prompt."""
        prompt = instructions or self.system_prompt
        return ([ChatMessage("system", prompt)] if prompt else []) + _merge_calls(messages)

    def _trim(self) -> None:
        self._entries = _newest_turns(self._entries, self.max_turns)


def _newest_turns(entries: list[_Entry], max_turns: int) -> list[_Entry]:
    # A turn is a user message and what answered it; keep the newest max_turns of them.
    user_indexes = [i for i, e in enumerate(entries) if e.message.role == "user"]
    if len(user_indexes) > max_turns:
        return entries[user_indexes[-max_turns] :]
    return entries


def _merge_calls(messages: list[ChatMessage]) -> list[ChatMessage]:
    """A function call is its own item, but chat APIs want one assistant message carrying every
    call of a reply (its words included) before the calls' results: merge them."""
    # Chat APIs also refuse a call without its result and a result without its call (one may be
    # deleted, trimmed away or still awaited): such halves are left out.
    answered = {m.tool_call_id for m in messages if m.role == "tool"}
    called = {c.id for m in messages for c in m.tool_calls if c.id in answered}
    out: list[ChatMessage] = []
    for message in messages:
        if message.role == "tool" and message.tool_call_id not in called:
            continue
        if message.tool_calls:
            calls = tuple(c for c in message.tool_calls if c.id in called)
            if not calls and not message.content:
                continue
            message = ChatMessage(message.role, message.content, tool_calls=calls)
        last = out[-1] if out else None
        if (
            message.tool_calls
            and last is not None
            and last.role == "assistant"
            and message.role == "assistant"
        ):
            text = " ".join(t for t in (last.content, message.content) if t)
            out[-1] = ChatMessage("assistant", text, tool_calls=last.tool_calls + message.tool_calls)
        else:
            out.append(message)
    return out
