"""The conversation's record: a reply the client truncates while it is still being said (a reply
paused by speech over it, which the client has already cut) is in the LLM's history once, with
the words the client heard."""

from __future__ import annotations

from hark.pipeline.items import Item
from hark.pipeline.record import Record


def _assistant(record: Record) -> list[str]:
    return [m.content for _, m in record.history.entries() if m.role == "assistant"]


def test_a_reply_truncated_before_it_ends_is_in_the_history_once() -> None:
    record = Record("Be brief.", history_turns=10)
    record.open_reply("item_1", audio=True)
    record.truncated("item_1", "Once upon a")  # the client cut it while it was paused
    record.reply_done(Item("item_1", "message", role="assistant", text="Once upon a time", audio=True))
    assert _assistant(record) == ["Once upon a"]
    item = record.items.get("item_1")
    assert item.text == "Once upon a" and item.status == "incomplete"


def test_a_reply_truncated_after_it_ended_replaces_its_words() -> None:
    record = Record("Be brief.", history_turns=10)
    record.open_reply("item_1", audio=True)
    record.reply_done(Item("item_1", "message", role="assistant", text="Once upon a time", audio=True))
    record.truncated("item_1", "Once upon")
    assert _assistant(record) == ["Once upon"]
    record.open_reply("item_2", audio=True)
    record.reply_done(Item("item_2", "message", role="assistant", text="The end.", audio=True))
    assert _assistant(record) == ["Once upon", "The end."]
