"""GeminiLLM against a loopback server speaking the Gemini API's streamGenerateContent SSE format."""

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
from hark.engines.llm.gemini import GeminiLLM
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.contract.servers.anthropic_server import REPLY
from tests.contract.servers.gemini_server import FakeGemini, signature
from tests.servers import ThreadedServer, free_port

MODEL = "gemini-stand-in"
ASK = (ChatMessage("system", "Be brief."), ChatMessage("user", "What is the weather in Paris?"))
WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
Make = Callable[..., GeminiLLM]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeGemini, ThreadedServer]]:
    fake = FakeGemini()
    with ThreadedServer(fake.app()) as running:
        yield fake, running
        fake.closing = True


@pytest.fixture
def fake(server: tuple[FakeGemini, ThreadedServer]) -> FakeGemini:
    server[0].reset()
    return server[0]


@pytest.fixture
async def make(server: tuple[FakeGemini, ThreadedServer]) -> AsyncIterator[Make]:
    engines: list[GeminiLLM] = []

    def build(base_url: str | None = None, **fields: Any) -> GeminiLLM:
        config: dict[str, Any] = {"api_key": "test-key", "model": MODEL, "timeout": 1.0, "total_timeout": 5.0}
        config.update(fields)
        provider = ProviderConfig(kind="gemini", base_url=base_url or server[1].base_url, **config)
        engines.append(GeminiLLM.from_config(provider, Settings()))
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


def field(mapping: dict[str, Any], camel: str) -> Any:
    """A request field, which proto3 JSON may spell lowerCamelCase or snake_case."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return mapping[camel] if camel in mapping else mapping[snake]


async def test_text_streams_in_deltas(fake: FakeGemini, make: Make) -> None:
    chunks = await collect(make())
    assert len(chunks) > 3 and all(isinstance(c, str) for c in chunks)
    assert "".join(str(c) for c in chunks) == REPLY


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


@pytest.mark.parametrize(("fault", "status"), [(Fault.HTTP_500, 500), (Fault.HTTP_429, 429)])
async def test_server_trouble_is_retryable(fake: FakeGemini, make: Make, fault: Fault, status: int) -> None:
    fake.faults.set(fault, retry_after=7)
    chunks, error = await failure(make())
    assert chunks == [] and error.retryable and str(status) in str(error)
    assert error.engine == "gemini"
    assert error.retry_after == (7.0 if status == 429 else None)


async def test_bad_request_and_bad_key_are_final(fake: FakeGemini, make: Make) -> None:
    fake.fail_status = 401
    _, error = await failure(make())
    assert not error.retryable and "401" in str(error)
    fake.fail_status = None
    _, error = await failure(make(api_key="wrong-key"))  # Gemini answers a bad key with 400.
    assert not error.retryable and "400" in str(error)


async def test_connection_refused_is_unavailable(make: Make) -> None:
    _, error = await failure(make(base_url=f"http://127.0.0.1:{free_port()}"))
    assert isinstance(error, EngineUnavailable)


@pytest.mark.parametrize("fault", [Fault.MALFORMED, Fault.DISCONNECT])
async def test_broken_stream_raises_after_the_text_so_far(fake: FakeGemini, make: Make, fault: Fault) -> None:
    fake.faults.set(fault)
    chunks, error = await failure(make())
    text = "".join(str(c) for c in chunks)
    assert text and REPLY.startswith(text) and text != REPLY
    assert error.retryable and not isinstance(error, EngineUnavailable)


async def test_stall_times_out(fake: FakeGemini, make: Make) -> None:
    fake.faults.set(Fault.STALL)
    started = time.monotonic()
    _, error = await failure(make(timeout=1.0))
    assert error.retryable and "timed out" in str(error)
    assert time.monotonic() - started < 4


async def test_slow_first_byte_within_the_timeout_is_fine(fake: FakeGemini, make: Make) -> None:
    fake.faults.set(Fault.SLOW_FIRST_BYTE, delay=0.4)
    assert "".join(str(c) for c in await collect(make(timeout=1.0))) == REPLY


async def test_total_timeout_bounds_a_trickling_stream(fake: FakeGemini, make: Make) -> None:
    fake.token_delay = 0.15
    started = time.monotonic()
    chunks, error = await failure(make(timeout=1.0, total_timeout=0.6))
    assert chunks and error.retryable and "total_timeout" in str(error)
    assert time.monotonic() - started < 2


async def test_check(fake: FakeGemini, make: Make) -> None:
    await make().check()
    with pytest.raises(EngineUnavailable):
        await make(base_url=f"http://127.0.0.1:{free_port()}").check()


async def test_key_comes_from_gemini_then_google_api_key(
    fake: FakeGemini, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        make(api_key=None)
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    await collect(make(api_key=None))
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key")
    fake.api_key = "gemini-key"
    try:
        assert "".join(str(c) for c in await collect(make(api_key=None))) == REPLY
    finally:
        fake.api_key = "test-key"
    assert fake.last["headers"]["x-goog-api-key"] == "gemini-key"


def test_model_is_required() -> None:
    with pytest.raises(ConfigError, match="model"):
        GeminiLLM.from_config(ProviderConfig(kind="gemini", api_key="k"), Settings())


async def test_registry_builds_it() -> None:
    engine = registry.build("llm", ProviderConfig(kind="gemini", api_key="k", model=MODEL), Settings())
    assert isinstance(engine, GeminiLLM) and isinstance(engine, LLM)
    await engine.aclose()


def test_missing_sdk_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['google.genai'] = None\n"
        "from hark.config import ProviderConfig, Settings\n"
        "from hark.engines.llm.gemini import GeminiLLM\n"
        "GeminiLLM.from_config(ProviderConfig(kind='gemini', api_key='k', model='m'), Settings())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "MissingDependency" in result.stderr and "pip install 'hark[gemini]'" in result.stderr
