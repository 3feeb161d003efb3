"""Structured output: invalid JSON is shown back to the LLM and repaired."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from hark.engines.base import ChatMessage
from hark.engines.structured import StructuredOutputError, complete_json, extract_json
from tests.fakes import FakeLLM


class Action(BaseModel):
    task: str
    owner: str | None = None


class Summary(BaseModel):
    summary: str
    actions: list[Action]


class Scripted(FakeLLM):
    def __init__(self, replies: list[str]) -> None:
        super().__init__()
        self.replies = replies

    async def stream(self, messages: Any, options: Any = None) -> Any:  # type: ignore[override]
        self.calls.append(list(messages))
        self.options.append(options)
        yield self.replies.pop(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', '{"a": 1}'),
        ('```json\n{"a": {"b": 2}}\n```', '{"a": {"b": 2}}'),
        ('Sure! Here it is: {"a": 1} Hope that helps.', '{"a": 1}'),
    ],
)
def test_extract_json(text: str, expected: str) -> None:
    assert extract_json(text) == expected


def test_extract_json_without_an_object() -> None:
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json("I cannot do that.")


async def test_invalid_json_is_repaired() -> None:
    llm = Scripted(
        [
            '{"summary": "Planning", "actions": [{"owner": "Ana"}]}',
            '{"summary": "Planning", "actions": [{"task": "Book a room", "owner": "Ana"}]}',
        ]
    )
    result = await complete_json(llm, [ChatMessage("user", "Summarise the meeting.")], Summary)
    assert result == Summary(summary="Planning", actions=[Action(task="Book a room", owner="Ana")])
    assert len(llm.calls) == 2
    repair = llm.calls[1][-1]
    assert repair.role == "user" and "actions.0.task" in repair.content and "not valid" in repair.content
    assert llm.options[0] is not None and llm.options[0].json_schema == Summary.model_json_schema()


async def test_gives_up_after_the_attempts() -> None:
    llm = Scripted(["no", "still no", "nope"])
    with pytest.raises(StructuredOutputError, match="no valid Summary after 3 attempts"):
        await complete_json(llm, [ChatMessage("user", "x")], Summary)
