"""The embedded llama.cpp model gets calls and their results as plain chat turns (many GGUF
chat templates refuse a ``tool`` role or an empty assistant turn)."""

from __future__ import annotations

from hark.engines.base import ChatMessage, ToolCall
from hark.engines.llm.llama_cpp import _plain


def test_calls_and_results_become_words() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    assert _plain(ChatMessage("assistant", "", tool_calls=(call,))) == {
        "role": "assistant",
        "content": '(called get_weather({"city": "Paris"}))',
    }
    assert _plain(ChatMessage("assistant", "Let me look.", tool_calls=(call,)))["content"] == (
        'Let me look. (called get_weather({"city": "Paris"}))'
    )
    assert _plain(ChatMessage("tool", "sunny", tool_call_id="call_1")) == {
        "role": "user",
        "content": "(tool result) sunny",
    }


def test_plain_messages_pass_unchanged() -> None:
    for role in ("system", "user", "assistant"):
        assert _plain(ChatMessage(role, "hi")) == {"role": role, "content": "hi"}  # type: ignore[arg-type]
