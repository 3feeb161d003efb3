"""AnthropicLLM against a loopback server speaking the Messages API's streaming wire format."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from hark.config import Settings
from hark.engines.base import ChatMessage, LLMOptions, ToolCall
from hark.engines.llm.anthropic import JSON_INSTRUCTION, AnthropicLLM
from tests.contract.harness import engine_factory
from tests.contract.llm_contract import ASK, WEATHER, SDKLLMContract, collect, failure
from tests.contract.servers.anthropic_server import FakeAnthropic
from tests.contract.servers.common import REPLY, serving
from tests.servers import ThreadedServer

MODEL = "claude-stand-in"
Make = Callable[..., AnthropicLLM]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeAnthropic, ThreadedServer]]:
    with serving(FakeAnthropic()) as running:
        yield running


@pytest.fixture
async def make(server: tuple[FakeAnthropic, ThreadedServer]) -> AsyncIterator[Make]:
    defaults = {"api_key": "test-key", "model": MODEL, "timeout": 1.0, "total_timeout": 5.0}
    async with engine_factory(AnthropicLLM.from_config, "anthropic", server[1].base_url, **defaults) as build:
        yield build


class TestStreamingContract(SDKLLMContract):
    engine, engine_class, model = "anthropic", AnthropicLLM, MODEL
    key_envs = ("ANTHROPIC_API_KEY",)
    sdk_module, extra = "anthropic", "anthropic"


async def test_request_shape_and_auth(fake: FakeAnthropic, make: Make) -> None:
    await collect(make(), options=LLMOptions(max_tokens=64))
    request = fake.last
    assert request["path"] == "/v1/messages"
    body = request["body"]
    assert body["model"] == MODEL
    assert body["stream"] is True
    assert body["max_tokens"] == 64
    assert body["system"] == "Be brief."  # Top-level, never a message.
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]}
    ]
    assert "temperature" not in body  # The SDK's API version rejects sampling parameters.
    assert "tools" not in body
    headers = request["headers"]
    assert headers["anthropic-version"]
    assert "test-key" in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))


async def test_default_max_tokens_come_from_settings(fake: FakeAnthropic, make: Make) -> None:
    await collect(make())
    assert fake.last["body"]["max_tokens"] == Settings().llm.max_tokens


async def test_tool_call_arrives_whole(fake: FakeAnthropic, make: Make) -> None:
    fake.tool_calls = [("get_weather", {"city": "Paris", "unit": "celsius"})]
    chunks = await collect(make(), options=LLMOptions(tools=(WEATHER,)))
    calls = [c for c in chunks if isinstance(c, ToolCall)]
    assert len(calls) == 1
    assert calls[0].id == "toolu_stand_in_0" and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris", "unit": "celsius"}
    assert "".join(c for c in chunks if isinstance(c, str)) == REPLY
    assert fake.last["body"]["tools"] == [
        {"name": WEATHER.name, "description": WEATHER.description, "input_schema": WEATHER.parameters}
    ]


async def test_tool_results_follow_up(fake: FakeAnthropic, make: Make) -> None:
    fake.reply = ""
    fake.tool_calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Lyon"})]
    llm = make()
    calls = await collect(llm, options=LLMOptions(tools=(WEATHER,)))
    assert [type(c) for c in calls] == [ToolCall, ToolCall]
    history = (
        *ASK,
        ChatMessage("assistant", "", tool_calls=tuple(c for c in calls if isinstance(c, ToolCall))),
        ChatMessage("tool", '{"temp_c": 21}', tool_call_id="toolu_stand_in_0"),
        ChatMessage("tool", '{"temp_c": 19}', tool_call_id="toolu_stand_in_1"),
    )
    fake.reply, fake.tool_calls = REPLY, []
    assert "".join(str(c) for c in await collect(llm, history, LLMOptions(tools=(WEATHER,)))) == REPLY
    assert fake.last["body"]["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_stand_in_0",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_stand_in_1",
                    "name": "get_weather",
                    "input": {"city": "Lyon"},
                },
            ],
        },
        {  # Both results in the one user turn that follows, as the API requires.
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_stand_in_0", "content": '{"temp_c": 21}'},
                {"type": "tool_result", "tool_use_id": "toolu_stand_in_1", "content": '{"temp_c": 19}'},
            ],
        },
    ]


async def test_json_schema_becomes_a_system_instruction(fake: FakeAnthropic, make: Make) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    await collect(make(), options=LLMOptions(json_schema=schema))
    system = fake.last["body"]["system"]
    assert system.startswith("Be brief.\n\n")
    assert system.endswith(JSON_INSTRUCTION + json.dumps(schema))


async def test_error_event_mid_stream_is_retryable(fake: FakeAnthropic, make: Make) -> None:
    fake.error_event = "overloaded_error"
    chunks, error = await failure(make())
    text = "".join(str(c) for c in chunks)
    assert text and REPLY.startswith(text) and text != REPLY
    assert error.retryable and "error event" in str(error)


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", None),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ("get_weather", {"type": "tool", "name": "get_weather"}),
    ],
)
async def test_tool_choice_is_mapped(fake: FakeAnthropic, make: Make, choice: str, wire: Any) -> None:
    await collect(make(), options=LLMOptions(tools=(WEATHER,), tool_choice=choice))
    assert fake.last["body"].get("tool_choice") == wire
