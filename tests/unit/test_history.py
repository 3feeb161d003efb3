"""Tests for the conversation history (hark.pipeline.history)."""

from __future__ import annotations

import pytest

from hark.engines.base import ChatMessage
from hark.pipeline.history import History


def sys_(text: str) -> ChatMessage:
    return ChatMessage("system", text)


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


def bot(text: str) -> ChatMessage:
    return ChatMessage("assistant", text)


def exchanges(history: History, count: int, start: int = 1) -> None:
    for n in range(start, start + count):
        history.add(f"u{n}", "user", f"q{n}")
        history.add(f"a{n}", "assistant", f"r{n}")


def test_empty_history_is_just_the_system_prompt() -> None:
    assert History("Be brief.", 10).messages() == [sys_("Be brief.")]


def test_empty_system_prompt_is_left_out() -> None:
    history = History("", 10)
    assert history.messages() == []
    history.add("u1", "user", "hi")
    assert history.messages() == [user("hi")]


def test_system_prompt_comes_first_then_items_in_order() -> None:
    history = History("Be brief.", 10)
    history.add("u1", "user", "hello")
    history.add("a1", "assistant", "hi there")
    history.add("u2", "user", "how are you")
    assert history.messages() == [sys_("Be brief."), user("hello"), bot("hi there"), user("how are you")]


@pytest.mark.parametrize(
    ("instructions", "expected_system"),
    [(None, "Default."), ("", "Default."), ("Speak French.", "Speak French.")],
)
def test_instructions_override_the_system_prompt(instructions: str | None, expected_system: str) -> None:
    history = History("Default.", 10)
    history.add("u1", "user", "hi")
    assert history.messages(instructions) == [sys_(expected_system), user("hi")]
    # The override is per call; the stored prompt is unchanged.
    assert history.messages() == [sys_("Default."), user("hi")]


def test_instructions_with_empty_system_prompt() -> None:
    history = History("", 10)
    assert history.messages("Now this.") == [sys_("Now this.")]


@pytest.mark.parametrize("max_turns", [1, 2, 3, 5])
def test_trims_to_the_newest_max_turns_exchanges(max_turns: int) -> None:
    history = History("S", max_turns)
    exchanges(history, 8)
    kept = range(8 - max_turns + 1, 9)
    expected = [sys_("S")]
    for n in kept:
        expected += [user(f"q{n}"), bot(f"r{n}")]
    assert history.messages() == expected


def test_no_trimming_below_the_limit() -> None:
    history = History("S", 3)
    exchanges(history, 3)
    assert len(history.messages()) == 7
    assert history.text_of("u1") == "q1"


def test_trimming_happens_when_a_new_user_message_arrives() -> None:
    history = History("S", 2)
    exchanges(history, 2)
    history.add("u3", "user", "q3")
    # The oldest exchange goes as soon as the third user message arrives.
    assert history.messages() == [sys_("S"), user("q2"), bot("r2"), user("q3")]
    assert history.text_of("u1") is None
    assert history.text_of("a1") is None


def test_assistant_items_without_a_user_message_are_kept_until_a_trim() -> None:
    history = History("S", 1)
    history.add("a0", "assistant", "Welcome!")
    history.add("a00", "assistant", "Ask me anything.")
    assert history.messages() == [sys_("S"), bot("Welcome!"), bot("Ask me anything.")]
    history.add("u1", "user", "q1")
    assert history.messages() == [sys_("S"), bot("Welcome!"), bot("Ask me anything."), user("q1")]
    history.add("a1", "assistant", "r1")
    history.add("u2", "user", "q2")
    assert history.messages() == [sys_("S"), user("q2")]


def test_consecutive_user_messages_are_each_a_turn() -> None:
    history = History("S", 2)
    for n in range(1, 5):
        history.add(f"u{n}", "user", f"q{n}")
    assert history.messages() == [sys_("S"), user("q3"), user("q4")]


@pytest.mark.parametrize("max_turns", [0, -1])
def test_max_turns_below_one_is_refused(max_turns: int) -> None:
    # A turn is the current user message with its reply, so fewer than one would drop the question.
    with pytest.raises(ValueError, match="max_turns"):
        History("S", max_turns)


def test_replace_an_assistant_item() -> None:
    history = History("S", 10)
    history.add("u1", "user", "tell me a story")
    history.add("a1", "assistant", "Once upon a time there was a dragon.")
    history.add("u2", "user", "stop")
    assert history.replace("a1", "Once upon a time") is True
    assert history.text_of("a1") == "Once upon a time"
    assert history.messages() == [sys_("S"), user("tell me a story"), bot("Once upon a time"), user("stop")]


def test_replace_keeps_the_role() -> None:
    history = History("S", 10)
    history.add("u1", "user", "hello")
    assert history.replace("u1", "hello there") is True
    assert history.messages() == [sys_("S"), user("hello there")]


def test_replace_with_empty_text_removes_an_assistant_item() -> None:
    history = History("S", 10)
    history.add("u1", "user", "q1")
    history.add("a1", "assistant", "r1")
    history.add("u2", "user", "q2")
    assert history.replace("a1", "") is True
    assert history.text_of("a1") is None
    assert history.messages() == [sys_("S"), user("q1"), user("q2")]
    # Gone for good: replacing it again finds nothing.
    assert history.replace("a1", "again") is False
    assert history.text_of("a1") is None


def test_replace_unknown_item() -> None:
    history = History("S", 10)
    exchanges(history, 1)
    before = history.messages()
    assert history.replace("nope", "x") is False
    assert history.replace("nope", "") is False
    assert history.messages() == before


def test_replace_of_a_trimmed_item_returns_false() -> None:
    history = History("S", 1)
    exchanges(history, 3)
    assert history.replace("a1", "short") is False
    assert history.messages() == [sys_("S"), user("q3"), bot("r3")]


@pytest.mark.parametrize("role", ["system", "tool", "User", "", "ASSISTANT"])
def test_unknown_role_rejected(role: str) -> None:
    history = History("S", 10)
    with pytest.raises(ValueError, match="unsupported role"):
        history.add("x", role, "text")
    assert history.messages() == [sys_("S")]


def test_text_of_and_last_user_text() -> None:
    history = History("S", 10)
    assert history.last_user_text() is None
    assert history.text_of("u1") is None
    history.add("a0", "assistant", "hi")
    assert history.last_user_text() is None
    exchanges(history, 2)
    assert history.text_of("u1") == "q1"
    assert history.text_of("a2") == "r2"
    assert history.last_user_text() == "q2"


def test_clear() -> None:
    history = History("S", 10)
    exchanges(history, 3)
    history.clear()
    assert history.messages() == [sys_("S")]
    assert history.last_user_text() is None
    history.add("u9", "user", "again")
    assert history.messages() == [sys_("S"), user("again")]


def test_messages_returns_a_fresh_list() -> None:
    history = History("S", 10)
    exchanges(history, 1)
    first = history.messages()
    first.append(user("injected"))
    assert history.messages() == [sys_("S"), user("q1"), bot("r1")]
