"""GeminiLLM against a loopback server speaking the Gemini API's streamGenerateContent SSE format."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from hark.config import Settings
from hark.engines.base import ChatMessage, LLMOptions, ToolCall
from hark.engines.llm.gemini import GeminiLLM
from tests.contract.harness import engine_factory
from tests.contract.llm_contract import ASK, WEATHER, SDKLLMContract, collect
from tests.contract.servers.common import REPLY, serving
from tests.contract.servers.gemini_server import FakeGemini, signature
from tests.servers import ThreadedServer

MODEL = "gemini-stand-in"
Make = Callable[..., GeminiLLM]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeGemini, ThreadedServer]]:
    with serving(FakeGemini()) as running:
        yield running


@pytest.fixture
async def make(server: tuple[FakeGemini, ThreadedServer]) -> AsyncIterator[Make]:
    defaults = {"api_key": "test-key", "model": MODEL, "timeout": 1.0, "total_timeout": 5.0}
    async with engine_factory(GeminiLLM.from_config, "gemini", server[1].base_url, **defaults) as build:
        yield build


class TestStreamingContract(SDKLLMContract):
    engine, engine_class, model = "gemini", GeminiLLM, MODEL
    key_envs = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    sdk_module, extra = "google.genai", "gemini"
    fail_status, bad_key_status = 401, 400  # Gemini answers a bad key with 400.

    async def test_key_comes_from_the_environment(
        self, fake: FakeGemini, make: Make, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await super().test_key_comes_from_the_environment(fake, make, monkeypatch)
        monkeypatch.delenv("GEMINI_API_KEY")  # GOOGLE_API_KEY alone will do...
        monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
        await collect(make(api_key=None))
        monkeypatch.setenv("GEMINI_API_KEY", "gemini-key")  # ...but GEMINI_API_KEY comes first.
        fake.api_key = "gemini-key"
        try:
            assert "".join(str(c) for c in await collect(make(api_key=None))) == REPLY
        finally:
            fake.api_key = "test-key"
        assert fake.last["headers"]["x-goog-api-key"] == "gemini-key"


def field(mapping: dict[str, Any], camel: str) -> Any:
    """A request field, which proto3 JSON may spell lowerCamelCase or snake_case."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return mapping[camel] if camel in mapping else mapping[snake]


async def test_request_shape_and_auth(fake: FakeGemini, make: Make) -> None:
    await collect(make(), options=LLMOptions(max_tokens=64, temperature=0.2))
    request = fake.last
    assert request["path"].endswith(f"/models/{MODEL}:streamGenerateContent")
    assert request["query"]["alt"] == "sse"
    assert request["headers"]["x-goog-api-key"] == "test-key"
    body = request["body"]
    assert body["contents"] == [{"role": "user", "parts": [{"text": "What is the weather in Paris?"}]}]
    assert field(body, "systemInstruction")["parts"] == [{"text": "Be brief."}]
    config = field(body, "generationConfig")
    assert field(config, "maxOutputTokens") == 64 and config["temperature"] == 0.2
    assert "tools" not in body


async def test_defaults_come_from_settings(fake: FakeGemini, make: Make) -> None:
    await collect(make())
    config = field(fake.last["body"], "generationConfig")
    assert field(config, "maxOutputTokens") == Settings().llm.max_tokens
    assert config["temperature"] == Settings().llm.temperature


async def test_tool_call_arrives_whole(fake: FakeGemini, make: Make) -> None:
    fake.tool_calls = [("get_weather", {"city": "Paris", "unit": "celsius"})]
    chunks = await collect(make(), options=LLMOptions(tools=(WEATHER,)))
    calls = [c for c in chunks if isinstance(c, ToolCall)]
    assert len(calls) == 1
    assert calls[0].id and calls[0].name == "get_weather"  # Gemini gave no id: hark made one.
    assert json.loads(calls[0].arguments) == {"city": "Paris", "unit": "celsius"}
    assert "".join(c for c in chunks if isinstance(c, str)) == REPLY
    [declaration] = field(fake.last["body"]["tools"][0], "functionDeclarations")
    assert declaration["name"] == WEATHER.name and declaration["description"] == WEATHER.description
    assert field(declaration, "parametersJsonSchema") == WEATHER.parameters


async def test_tool_result_follow_up(fake: FakeGemini, make: Make) -> None:
    fake.reply, fake.tool_calls = "", [("get_weather", {"city": "Paris"})]
    llm = make()
    [call] = await collect(llm, options=LLMOptions(tools=(WEATHER,)))
    assert isinstance(call, ToolCall)
    history = (
        *ASK,
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", '{"temp_c": 21}', tool_call_id=call.id),
    )
    fake.reply, fake.tool_calls = REPLY, []
    assert "".join(str(c) for c in await collect(llm, history, LLMOptions(tools=(WEATHER,)))) == REPLY
    model_turn, result_turn = fake.last["body"]["contents"][1:]
    # The made-up id stays with hark; the thought signature goes back exactly as it came.
    assert model_turn == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": signature(0),
            }
        ],
    }
    assert result_turn == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}],
    }


async def test_gemini_call_ids_round_trip(fake: FakeGemini, make: Make) -> None:
    fake.reply, fake.tool_calls, fake.call_ids = "", [("get_weather", {"city": "Paris"})], True
    llm = make()
    [call] = await collect(llm, options=LLMOptions(tools=(WEATHER,)))
    assert isinstance(call, ToolCall) and call.id == "stand-in-call-0"
    history = (
        *ASK,
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "sunny", tool_call_id=call.id),
    )
    await collect(llm, history, LLMOptions(tools=(WEATHER,)))
    model_turn, result_turn = fake.last["body"]["contents"][1:]
    assert field(model_turn["parts"][0], "functionCall")["id"] == "stand-in-call-0"
    response = field(result_turn["parts"][0], "functionResponse")
    assert response == {"id": "stand-in-call-0", "name": "get_weather", "response": {"output": "sunny"}}


async def test_json_schema_uses_structured_output(fake: FakeGemini, make: Make) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    await collect(make(), options=LLMOptions(json_schema=schema))
    config = field(fake.last["body"], "generationConfig")
    assert field(config, "responseMimeType") == "application/json"
    assert field(config, "responseJsonSchema") == schema


@pytest.mark.parametrize(
    ("choice", "mode", "names"),
    [("none", "NONE", None), ("required", "ANY", None), ("get_weather", "ANY", ["get_weather"])],
)
async def test_tool_choice_is_mapped(
    fake: FakeGemini, make: Make, choice: str, mode: str, names: list[str] | None
) -> None:
    await collect(make(), options=LLMOptions(tools=(WEATHER,), tool_choice=choice))
    config = field(field(fake.last["body"], "toolConfig"), "functionCallingConfig")
    assert config["mode"] == mode
    if names:
        assert field(config, "allowedFunctionNames") == names


async def test_auto_tool_choice_sends_no_tool_config(fake: FakeGemini, make: Make) -> None:
    await collect(make(), options=LLMOptions(tools=(WEATHER,)))
    assert "toolConfig" not in fake.last["body"] and "tool_config" not in fake.last["body"]
