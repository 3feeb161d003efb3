"""AzureOpenAILLM against a loopback Azure OpenAI deployment (chat completions, streamed as SSE)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from hark.config import ProviderConfig, Settings
from hark.engines import registry
from hark.engines.base import LLM, ChatMessage, LLMOptions, ToolCall
from hark.engines.llm.azure import DEFAULT_API_VERSION, AzureOpenAILLM
from hark.errors import ConfigError
from tests.contract.harness import engine_factory
from tests.contract.llm_contract import ASK, WEATHER, StreamingLLMContract, collect, failure
from tests.contract.servers.azure_server import DEPLOYMENT, FakeAzure
from tests.contract.servers.common import serving
from tests.servers import ThreadedServer

Make = Callable[..., AzureOpenAILLM]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeAzure, ThreadedServer]]:
    with serving(FakeAzure()) as running:
        yield running


@pytest.fixture
async def make(server: tuple[FakeAzure, ThreadedServer]) -> AsyncIterator[Make]:
    defaults = {"api_key": "test-key", "model": DEPLOYMENT, "timeout": 1.0}
    async with engine_factory(AzureOpenAILLM.from_config, "azure", server[1].base_url, **defaults) as build:
        yield build


class TestStreamingContract(StreamingLLMContract):
    engine, key_envs = "azure", ("AZURE_OPENAI_API_KEY",)

    async def test_bad_request_and_bad_key_are_final(self, fake: FakeAzure, make: Make) -> None:
        await super().test_bad_request_and_bad_key_are_final(fake, make)
        _, error = await failure(make(model="no-such-deployment"))  # So is an unknown deployment.
        assert not error.retryable and "404" in str(error)


async def test_request_shape_and_auth(fake: FakeAzure, make: Make) -> None:
    await collect(make(), options=LLMOptions(max_tokens=64, temperature=0.2))
    request = fake.last
    assert request["path"] == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert request["query"] == {"api-version": DEFAULT_API_VERSION}
    assert request["headers"]["api-key"] == "test-key"
    assert "authorization" not in request["headers"]
    body = request["body"]
    assert body["model"] == DEPLOYMENT and body["stream"] is True
    assert body["max_tokens"] == 64 and body["temperature"] == 0.2
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]


async def test_api_version_is_an_option(fake: FakeAzure, make: Make) -> None:
    await collect(make(options={"api_version": "2025-04-01-preview"}))
    assert fake.last["query"] == {"api-version": "2025-04-01-preview"}


async def test_tool_call_arrives_whole_and_result_follows_up(fake: FakeAzure, make: Make) -> None:
    fake.tool_calls = [("get_weather", {"city": "Paris", "unit": "celsius"})]
    llm = make()
    chunks = await collect(llm, options=LLMOptions(tools=(WEATHER,)))
    calls = [c for c in chunks if isinstance(c, ToolCall)]
    assert len(calls) == 1 and calls[0].id == "call_stand_in_0" and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris", "unit": "celsius"}
    assert fake.last["body"]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": WEATHER.name,
                "description": WEATHER.description,
                "parameters": WEATHER.parameters,
            },
        }
    ]
    history = (
        *ASK,
        ChatMessage("assistant", "", tool_calls=(calls[0],)),
        ChatMessage("tool", '{"temp_c": 21}', tool_call_id=calls[0].id),
    )
    fake.tool_calls = []
    await collect(llm, history, LLMOptions(tools=(WEATHER,)))
    assert fake.last["body"]["messages"][2:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_stand_in_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": calls[0].arguments},
                }
            ],
        },
        {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "call_stand_in_0"},
    ]


async def test_json_schema_uses_response_format(fake: FakeAzure, make: Make) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    await collect(make(), options=LLMOptions(json_schema=schema))
    response_format = fake.last["body"]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == schema


def test_endpoint_and_deployment_are_required() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        AzureOpenAILLM.from_config(ProviderConfig(kind="azure", api_key="k", model=DEPLOYMENT), Settings())
    with pytest.raises(ConfigError, match="deployment"):
        AzureOpenAILLM.from_config(
            ProviderConfig(kind="azure", api_key="k", base_url="https://x.openai.azure.com"), Settings()
        )


async def test_registry_builds_it() -> None:
    provider = ProviderConfig(
        kind="azure", api_key="k", base_url="https://x.openai.azure.com", model=DEPLOYMENT
    )
    engine = registry.build("llm", provider, Settings())
    assert isinstance(engine, AzureOpenAILLM) and isinstance(engine, LLM)
    await engine.aclose()


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("none", "none"),
        ("required", "required"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
async def test_tool_choice_is_mapped(fake: FakeAzure, make: Make, choice: str, wire: Any) -> None:
    await collect(make(), options=LLMOptions(tools=(WEATHER,), tool_choice=choice))
    assert fake.last["body"]["tool_choice"] == wire
