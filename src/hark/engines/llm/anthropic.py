"""Anthropic's Messages API, through the official ``anthropic`` SDK.

System messages go to ``system=``; OpenAI-style tools become Anthropic tools (``input_schema``);
a ``tool_use`` block's input streams as JSON fragments and is handed out as one ``ToolCall``;
tool results go back as ``tool_result`` blocks in a user turn. The request has no portable
response_format, so ``json_schema`` becomes an instruction in the system prompt. No temperature is
sent: the API version SDK 2.x speaks (2026-10-21) rejects every sampling parameter.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from hark.engines.base import ChatMessage, LLMChunk, LLMOptions, ToolCall
from hark.engines.provider_common import (
    Deadlines,
    llm_model,
    merged_turns,
    require_api_key,
    require_sdk,
    sdk_error,
    status_error,
    system_prompt,
    tool_arguments,
    unfinished,
)
from hark.errors import EngineError

# Anthropic's spelling of the portable choices; any other value names the one tool to call.
_TOOL_CHOICE: dict[str, dict[str, str]] = {"none": {"type": "none"}, "required": {"type": "any"}}

try:
    import anthropic
    import httpx2  # The SDK's transport: its errors escape the SDK once a stream is under way.
    from anthropic.types import (
        InputJSONDelta,
        RawContentBlockDeltaEvent,
        RawContentBlockStartEvent,
        RawContentBlockStopEvent,
        RawMessageStopEvent,
        TextDelta,
        ToolUseBlock,
    )
except ImportError as exc:  # The optional extra is missing; the constructor says how to install it.
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

DEFAULT_BASE_URL = "https://api.anthropic.com"
KEY_ENV = "ANTHROPIC_API_KEY"
JSON_INSTRUCTION = (
    "Answer only with one JSON value that matches this JSON schema, with no other text and no code fences:\n"
)


def classify(exc: Exception, where: str, engine: str) -> EngineError:
    """Map SDK and transport exceptions onto hark's retryable/final errors."""
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if status < 400:  # An ``error`` event inside a started stream, e.g. overloaded_error.
            return EngineError(f"{where} sent an error event", retryable=True, engine=engine)
        return status_error(status, exc.response.headers.get("retry-after"), where, engine)
    # A ValueError is undecodable JSON in an event.
    return sdk_error(
        exc,
        where,
        engine,
        timeout=(anthropic.APITimeoutError, httpx2.TimeoutException),
        unreachable=anthropic.APIConnectionError,
        broken=httpx2.TransportError,
    )


def _blocks(m: ChatMessage) -> list[dict[str, Any]]:
    if m.role == "tool":
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content}]
    # The API refuses empty text blocks, e.g. beside an assistant's tool calls.
    blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
    return blocks + [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": tool_arguments(c.arguments)}
        for c in m.tool_calls
    ]


def wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Turns as content blocks, consecutive turns of one role merged (see ``merged_turns``)."""
    turns = merged_turns(messages, _blocks, "assistant")
    return [{"role": role, "content": blocks} for role, blocks in turns]


def wire_system(messages: Sequence[ChatMessage], options: LLMOptions) -> str:
    parts = [system_prompt(messages)]
    if options.json_schema is not None:
        parts.append(JSON_INSTRUCTION + json.dumps(options.json_schema))
    return "\n\n".join(part for part in parts if part)


class _Blocks:
    """Turns stream events into chunks: text as it comes, each tool call once its block stops."""

    def __init__(self) -> None:
        self.tools: dict[int, list[str]] = {}
        self.finished = False

    def feed(self, event: object) -> list[LLMChunk]:
        if isinstance(event, RawContentBlockStartEvent) and isinstance(event.content_block, ToolUseBlock):
            self.tools[event.index] = [event.content_block.id, event.content_block.name, ""]
        elif isinstance(event, RawContentBlockDeltaEvent):
            if isinstance(event.delta, TextDelta) and event.delta.text:
                return [event.delta.text]
            if isinstance(event.delta, InputJSONDelta) and event.index in self.tools:
                self.tools[event.index][2] += event.delta.partial_json
        elif isinstance(event, RawContentBlockStopEvent) and event.index in self.tools:
            call_id, name, arguments = self.tools.pop(event.index)
            return [ToolCall(id=call_id, name=name, arguments=arguments or "{}")]
        elif isinstance(event, RawMessageStopEvent):
            self.finished = True
        return []


class AnthropicLLM:
    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        total_timeout: float = 120.0,
        max_tokens: int = 400,
        name: str = "anthropic",
    ) -> None:
        require_sdk(_IMPORT_ERROR, "anthropic", "pip install 'hark[anthropic]'")
        self.name = name
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.max_tokens = max_tokens
        # The fallback chain decides about retries, so the SDK makes exactly one attempt. The
        # timeout bounds connecting, the first byte and every gap between events.
        self._client = anthropic.AsyncAnthropic(
            base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout
        )

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> AnthropicLLM:
        require_sdk(_IMPORT_ERROR, "anthropic", "pip install 'hark[anthropic]'")
        api_key = require_api_key(provider, KEY_ENV, "llm")
        return cls(
            api_key=api_key,
            model=llm_model(provider, settings, "claude-haiku-4-5"),
            base_url=provider.base_url or DEFAULT_BASE_URL,
            timeout=provider.timeout,
            total_timeout=provider.total_timeout,
            max_tokens=settings.llm.max_tokens,
            name=provider.label,
        )

    @property
    def where(self) -> str:
        return f"Anthropic at {self.base_url}"

    def request(self, messages: Sequence[ChatMessage], options: LLMOptions) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": options.max_tokens or self.max_tokens,
            "messages": wire_messages(messages),
        }
        if system := wire_system(messages, options):
            request["system"] = system
        if options.tools:
            request["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in options.tools
            ]
            if options.tool_choice != "auto":
                request["tool_choice"] = _TOOL_CHOICE.get(
                    options.tool_choice, {"type": "tool", "name": options.tool_choice}
                )
        return request

    async def stream(
        self, messages: Sequence[ChatMessage], options: LLMOptions | None = None
    ) -> AsyncIterator[LLMChunk]:
        request = self.request(messages, options or LLMOptions())
        # total_timeout bounds the whole attempt, so a stream that trickles cannot run on forever.
        deadlines = Deadlines.total(self.total_timeout)
        response = None
        blocks = _Blocks()
        try:
            async with deadlines.wait():
                response = await self._client.messages.create(**request, stream=True)
            async for event in deadlines.each(aiter(response)):
                for chunk in blocks.feed(event):
                    yield chunk
            if not blocks.finished:
                raise EngineError(f"{self.where} ended the stream early", retryable=True, engine=self.name)
        except TimeoutError as exc:
            raise unfinished(self.where, self.total_timeout, self.name) from exc
        except (anthropic.AnthropicError, httpx2.HTTPError, ValueError) as exc:
            raise classify(exc, self.where, self.name) from exc
        finally:
            if response is not None:
                await response.close()

    async def check(self) -> None:
        try:
            await self._client.models.list(limit=1, timeout=min(3.0, self.timeout))
        except anthropic.NotFoundError:
            return  # A proxy without /v1/models; reachable is what matters here.
        except (anthropic.AnthropicError, httpx2.HTTPError) as exc:
            raise classify(exc, self.where, self.name) from exc

    async def aclose(self) -> None:
        await self._client.close()
