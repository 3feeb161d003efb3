"""AzureOpenAILLM against a loopback Azure OpenAI deployment (chat completions, streamed as SSE)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from hark.config import ProviderConfig, Settings
from hark.engines import registry
from hark.engines.base import LLM, ChatMessage, LLMChunk, LLMOptions, ToolCall, ToolSpec
from hark.engines.llm.azure import DEFAULT_API_VERSION, AzureOpenAILLM
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.contract.servers.anthropic_server import REPLY
from tests.contract.servers.azure_server import DEPLOYMENT, FakeAzure
from tests.servers import ThreadedServer, free_port

ASK = (ChatMessage("system", "Be brief."), ChatMessage("user", "What is the weather in Paris?"))
WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
Make = Callable[..., AzureOpenAILLM]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeAzure, ThreadedServer]]:
    fake = FakeAzure()
    with ThreadedServer(fake.app()) as running:
        yield fake, running
        fake.closing = True


@pytest.fixture
def fake(server: tuple[FakeAzure, ThreadedServer]) -> FakeAzure:
    server[0].reset()
    return server[0]


@pytest.fixture
async def make(server: tuple[FakeAzure, ThreadedServer]) -> AsyncIterator[Make]:
    engines: list[AzureOpenAILLM] = []

    def build(base_url: str | None = None, **fields: Any) -> AzureOpenAILLM:
        config: dict[str, Any] = {"api_key": "test-key", "model": DEPLOYMENT, "timeout": 1.0}
        config.update(fields)
        provider = ProviderConfig(kind="azure", base_url=base_url or server[1].base_url, **config)
        engines.append(AzureOpenAILLM.from_config(provider, Settings()))
        return engines[-1]

    yield build
    for engine in engines:
        await engine.aclose()


async def collect(
    llm: LLM, messages: tuple[ChatMessage, ...] = ASK, options: LLMOptions | None = None
) -> list[LLMChunk]:
    return [chunk async for chunk in llm.stream(messages, options)]


async def failure(llm: LLM, messages: tuple[ChatMessage, ...] = ASK) -> tuple[list[LLMChunk], EngineError]:
    """What streamed before the engine raised, and what it raised."""
    chunks: list[LLMChunk] = []
    with pytest.raises(EngineError) as caught:
        async for chunk in llm.stream(messages):
            chunks.append(chunk)
    return chunks, caught.value


async def test_text_streams_in_deltas(fake: FakeAzure, make: Make) -> None:
    chunks = await collect(make())
    assert len(chunks) > 3 and all(isinstance(c, str) for c in chunks)
    assert "".join(str(c) for c in chunks) == REPLY


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


@pytest.mark.parametrize(("fault", "status"), [(Fault.HTTP_500, 500), (Fault.HTTP_429, 429)])
async def test_server_trouble_is_retryable(fake: FakeAzure, make: Make, fault: Fault, status: int) -> None:
    fake.faults.set(fault, retry_after=7)
    chunks, error = await failure(make())
    assert chunks == [] and error.retryable and str(status) in str(error)
    assert error.engine == "azure"
    assert error.retry_after == (7.0 if status == 429 else None)


async def test_bad_request_bad_key_and_unknown_deployment_are_final(fake: FakeAzure, make: Make) -> None:
    fake.fail_status = 400
    _, error = await failure(make())
    assert not error.retryable and "400" in str(error)
    fake.fail_status = None
    _, error = await failure(make(api_key="wrong-key"))
    assert not error.retryable and "401" in str(error)
    _, error = await failure(make(model="no-such-deployment"))
    assert not error.retryable and "404" in str(error)


async def test_connection_refused_is_unavailable(make: Make) -> None:
    _, error = await failure(make(base_url=f"http://127.0.0.1:{free_port()}"))
    assert isinstance(error, EngineUnavailable)


@pytest.mark.parametrize("fault", [Fault.MALFORMED, Fault.DISCONNECT])
async def test_broken_stream_raises_after_the_text_so_far(fake: FakeAzure, make: Make, fault: Fault) -> None:
    fake.faults.set(fault)
    chunks, error = await failure(make())
    text = "".join(str(c) for c in chunks)
    assert text and REPLY.startswith(text) and text != REPLY
    assert error.retryable


async def test_stall_times_out(fake: FakeAzure, make: Make) -> None:
    fake.faults.set(Fault.STALL)
    started = time.monotonic()
    _, error = await failure(make(timeout=1.0))
    assert error.retryable and "timed out" in str(error)
    assert time.monotonic() - started < 4


async def test_slow_first_byte_within_the_timeout_is_fine(fake: FakeAzure, make: Make) -> None:
    fake.faults.set(Fault.SLOW_FIRST_BYTE, delay=0.4)
    assert "".join(str(c) for c in await collect(make(timeout=1.0))) == REPLY


async def test_check(fake: FakeAzure, make: Make) -> None:
    await make().check()
    with pytest.raises(EngineUnavailable):
        await make(base_url=f"http://127.0.0.1:{free_port()}").check()


async def test_key_comes_from_azure_openai_api_key(
    fake: FakeAzure, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="AZURE_OPENAI_API_KEY"):
        make(api_key=None)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    assert "".join(str(c) for c in await collect(make(api_key=None))) == REPLY


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
