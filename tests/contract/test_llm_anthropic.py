"""AnthropicLLM against a loopback server speaking the Messages API's streaming wire format."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from hark.config import ProviderConfig, Settings
from hark.engines import registry
from hark.engines.base import LLM, ChatMessage, LLMChunk, LLMOptions, ToolCall, ToolSpec
from hark.engines.llm.anthropic import JSON_INSTRUCTION, AnthropicLLM
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.contract.servers.anthropic_server import REPLY, FakeAnthropic
from tests.servers import ThreadedServer, free_port

MODEL = "claude-stand-in"
ASK = (ChatMessage("system", "Be brief."), ChatMessage("user", "What is the weather in Paris?"))
WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
Make = Callable[..., AnthropicLLM]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeAnthropic, ThreadedServer]]:
    fake = FakeAnthropic()
    with ThreadedServer(fake.app()) as running:
        yield fake, running
        fake.closing = True


@pytest.fixture
def fake(server: tuple[FakeAnthropic, ThreadedServer]) -> FakeAnthropic:
    server[0].reset()
    return server[0]


@pytest.fixture
async def make(server: tuple[FakeAnthropic, ThreadedServer]) -> AsyncIterator[Make]:
    engines: list[AnthropicLLM] = []

    def build(base_url: str | None = None, **fields: Any) -> AnthropicLLM:
        config: dict[str, Any] = {"api_key": "test-key", "model": MODEL, "timeout": 1.0, "total_timeout": 5.0}
        config.update(fields)
        provider = ProviderConfig(kind="anthropic", base_url=base_url or server[1].base_url, **config)
        engines.append(AnthropicLLM.from_config(provider, Settings()))
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


async def test_text_streams_in_deltas(fake: FakeAnthropic, make: Make) -> None:
    chunks = await collect(make())
    assert len(chunks) > 3 and all(isinstance(c, str) for c in chunks)
    assert "".join(str(c) for c in chunks) == REPLY


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


@pytest.mark.parametrize(
    ("fault", "status"),
    [(Fault.HTTP_500, 500), (Fault.HTTP_429, 429)],
)
async def test_server_trouble_is_retryable(
    fake: FakeAnthropic, make: Make, fault: Fault, status: int
) -> None:
    fake.faults.set(fault, retry_after=7)
    chunks, error = await failure(make())
    assert chunks == [] and error.retryable and str(status) in str(error)
    assert error.engine == "anthropic"
    assert error.retry_after == (7.0 if status == 429 else None)


async def test_bad_request_and_bad_key_are_final(fake: FakeAnthropic, make: Make) -> None:
    fake.fail_status = 400
    _, error = await failure(make())
    assert not error.retryable and "400" in str(error)
    fake.fail_status = None
    _, error = await failure(make(api_key="wrong-key"))
    assert not error.retryable and "401" in str(error)


async def test_connection_refused_is_unavailable(make: Make) -> None:
    _, error = await failure(make(base_url=f"http://127.0.0.1:{free_port()}"))
    assert isinstance(error, EngineUnavailable)


@pytest.mark.parametrize("fault", [Fault.MALFORMED, Fault.DISCONNECT])
async def test_broken_stream_raises_after_the_text_so_far(
    fake: FakeAnthropic, make: Make, fault: Fault
) -> None:
    fake.faults.set(fault)
    chunks, error = await failure(make())
    text = "".join(str(c) for c in chunks)
    assert text and REPLY.startswith(text) and text != REPLY
    assert error.retryable and not isinstance(error, EngineUnavailable)


async def test_error_event_mid_stream_is_retryable(fake: FakeAnthropic, make: Make) -> None:
    fake.error_event = "overloaded_error"
    chunks, error = await failure(make())
    text = "".join(str(c) for c in chunks)
    assert text and REPLY.startswith(text) and text != REPLY
    assert error.retryable and "error event" in str(error)


async def test_stall_times_out(fake: FakeAnthropic, make: Make) -> None:
    fake.faults.set(Fault.STALL)
    started = time.monotonic()
    _, error = await failure(make(timeout=1.0))
    assert error.retryable and "timed out" in str(error)
    assert time.monotonic() - started < 4


async def test_slow_first_byte_within_the_timeout_is_fine(fake: FakeAnthropic, make: Make) -> None:
    fake.faults.set(Fault.SLOW_FIRST_BYTE, delay=0.4)
    assert "".join(str(c) for c in await collect(make(timeout=1.0))) == REPLY


async def test_total_timeout_bounds_a_trickling_stream(fake: FakeAnthropic, make: Make) -> None:
    fake.token_delay = 0.15
    started = time.monotonic()
    chunks, error = await failure(make(timeout=1.0, total_timeout=0.6))
    assert chunks and error.retryable and "total_timeout" in str(error)
    assert time.monotonic() - started < 2


async def test_check(fake: FakeAnthropic, make: Make) -> None:
    await make().check()
    assert fake.requests == []  # models.list is not recorded as a chat request.
    with pytest.raises(EngineUnavailable):
        await make(base_url=f"http://127.0.0.1:{free_port()}").check()


async def test_key_comes_from_anthropic_api_key(
    fake: FakeAnthropic, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        make(api_key=None)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    assert "".join(str(c) for c in await collect(make(api_key=None))) == REPLY


def test_model_is_required() -> None:
    with pytest.raises(ConfigError, match="model"):
        AnthropicLLM.from_config(ProviderConfig(kind="anthropic", api_key="k"), Settings())


async def test_registry_builds_it() -> None:
    engine = registry.build("llm", ProviderConfig(kind="anthropic", api_key="k", model=MODEL), Settings())
    assert isinstance(engine, AnthropicLLM) and isinstance(engine, LLM)
    await engine.aclose()


def test_missing_sdk_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['anthropic'] = None\n"
        "from hark.config import ProviderConfig, Settings\n"
        "from hark.engines.llm.anthropic import AnthropicLLM\n"
        "AnthropicLLM.from_config(ProviderConfig(kind='anthropic', api_key='k', model='m'), Settings())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "MissingDependency" in result.stderr and "pip install 'hark[anthropic]'" in result.stderr
