"""Any OpenAI-compatible chat-completions server: OpenAI, vLLM, Ollama, llama.cpp server, Groq,
xAI, Cerebras. The kinds differ only in their default endpoint and key variable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import openai
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk

from hark.engines.base import TOOL_CHOICE_MODES, ChatMessage, LLMChunk, LLMOptions, ToolCall
from hark.engines.openai_client import check_models, classify
from hark.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings


@dataclass(frozen=True, slots=True)
class Preset:
    base_url: str | None
    key_env: str | None


PRESETS: dict[str, Preset] = {
    "openai": Preset("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "groq": Preset("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "xai": Preset("https://api.x.ai/v1", "XAI_API_KEY"),
    "cerebras": Preset("https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    "vllm": Preset(None, None),
    "ollama": Preset("http://127.0.0.1:11434/v1", None),
}


def wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        message: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls
            ]
        if m.tool_call_id is not None:
            message["tool_call_id"] = m.tool_call_id
        out.append(message)
    return out


def request_options(options: LLMOptions | None) -> dict[str, Any]:
    if options is None:
        return {}
    extra: dict[str, Any] = {}
    if options.tools:
        extra["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in options.tools
        ]
        if options.tool_choice != "auto":
            extra["tool_choice"] = (
                options.tool_choice
                if options.tool_choice in TOOL_CHOICE_MODES
                else {"type": "function", "function": {"name": options.tool_choice}}
            )
    if options.json_schema is not None:
        extra["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": options.json_schema},
        }
    return extra


class _ToolCallAssembler:
    """Tool calls stream in pieces keyed by index; hand them out whole."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, deltas: Sequence[Any]) -> None:
        for delta in deltas:
            call = self._calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""

    def finish(self) -> list[ToolCall]:
        calls = [
            ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"] or "{}")
            for i, c in sorted(self._calls.items())
        ]
        self._calls.clear()
        return calls


class OpenAICompatibleLLM:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout: float,
        temperature: float = 0.7,
        max_tokens: int = 400,
        name: str = "openai",
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        # The fallback chain decides about retries, so the SDK makes exactly one attempt.
        self._client = client or openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=timeout
        )

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> OpenAICompatibleLLM:
        preset = PRESETS.get(provider.kind, PRESETS["openai"])
        base_url = provider.base_url or preset.base_url
        if base_url is None:
            raise ConfigError(f"llm provider {provider.label}: base_url is required for kind {provider.kind}")
        configured = provider.api_key_env or provider.api_key or provider.api_key_file
        if not configured and preset.key_env is not None:
            provider = provider.model_copy(update={"api_key_env": preset.key_env})
        return cls(
            base_url=base_url,
            api_key=provider.secret(),
            model=provider.model or settings.llm.model,
            timeout=provider.timeout,
            temperature=settings.llm.temperature,
            max_tokens=settings.llm.max_tokens,
            name=provider.label,
        )

    @property
    def where(self) -> str:
        return f"the LLM at {self.base_url}"

    async def stream(
        self, messages: Sequence[ChatMessage], options: LLMOptions | None = None
    ) -> AsyncIterator[LLMChunk]:
        options = options or LLMOptions()
        try:
            response: AsyncStream[ChatCompletionChunk] = await self._client.chat.completions.create(  # type: ignore[assignment]
                model=self.model,
                messages=wire_messages(messages),  # type: ignore[arg-type]
                stream=True,
                temperature=self.temperature if options.temperature is None else options.temperature,
                max_tokens=options.max_tokens or self.max_tokens,
                **request_options(options),
            )
        except openai.OpenAIError as exc:
            raise classify(exc, self.where, self.name) from exc
        calls = _ToolCallAssembler()
        try:
            async for chunk in response:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                if delta.content:
                    yield str(delta.content)
                if delta.tool_calls:
                    calls.add(delta.tool_calls)
                if choice.finish_reason is not None:
                    for call in calls.finish():
                        yield call
            for call in calls.finish():
                yield call
        except openai.APIConnectionError as exc:
            # After the response began this is a dropped connection, not an unreachable server.
            raise EngineError(f"{self.where} dropped the stream", retryable=True, engine=self.name) from exc
        except openai.OpenAIError as exc:
            raise classify(exc, self.where, self.name) from exc
        except (json.JSONDecodeError, ValueError, KeyError, AttributeError) as exc:
            raise EngineError(
                f"{self.where} sent a malformed stream", retryable=True, engine=self.name
            ) from exc
        finally:
            await response.close()

    async def check(self) -> None:
        await check_models(self._client, self.timeout, self.where, self.name)

    async def aclose(self) -> None:
        await self._client.close()
