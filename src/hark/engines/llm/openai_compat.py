"""Any OpenAI-compatible chat-completions server: vLLM, Ollama, llama.cpp server, OpenAI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai

from hark.config import LLMSettings
from hark.engines.base import ChatMessage
from hark.errors import EngineError, EngineUnavailable

_RETRYABLE_STATUS = {408, 409, 429}


def _classify(exc: Exception, base_url: str) -> EngineError:
    if isinstance(exc, openai.APITimeoutError):
        return EngineError(f"the LLM at {base_url} timed out", retryable=True, engine="openai")
    if isinstance(exc, openai.APIConnectionError):
        return EngineUnavailable(f"cannot connect to the LLM at {base_url}", engine="openai")
    if isinstance(exc, openai.APIStatusError):
        retryable = exc.status_code in _RETRYABLE_STATUS or exc.status_code >= 500
        return EngineError(
            f"the LLM at {base_url} answered HTTP {exc.status_code}", retryable=retryable, engine="openai"
        )
    return EngineError(f"the LLM at {base_url} failed: {type(exc).__name__}", retryable=True, engine="openai")


class OpenAICompatibleLLM:
    name = "openai"

    def __init__(self, settings: LLMSettings) -> None:
        if settings.base_url is None:
            raise EngineUnavailable("llm.base_url is not set", engine=self.name)
        self.base_url = settings.base_url
        self.model = settings.model
        self._settings = settings
        api_key = settings.api_key.get_secret_value() if settings.api_key else "none"
        # The conversation decides what to do on failure, so the SDK does not retry on its own.
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url, api_key=api_key, max_retries=0, timeout=settings.timeout
        )

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        payload: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        try:
            async with asyncio.timeout(self._settings.timeout):
                response = await self._client.chat.completions.create(
                    model=self.model,
                    messages=payload,
                    stream=True,
                    temperature=self._settings.temperature,
                    max_tokens=self._settings.max_tokens,
                )
                iterator = response.__aiter__()
                first = await self._next_text(iterator)
        except TimeoutError as exc:
            raise EngineError(
                f"no first token from the LLM at {self.base_url} within {self._settings.timeout} s",
                retryable=True,
                engine=self.name,
            ) from exc
        except openai.OpenAIError as exc:
            raise _classify(exc, self.base_url) from exc
        try:
            if first:
                yield first
            while (text := await self._next_text(iterator)) is not None:
                yield text
        except openai.OpenAIError as exc:
            raise _classify(exc, self.base_url) from exc
        finally:
            await response.close()

    @staticmethod
    async def _next_text(iterator: AsyncIterator[Any]) -> str | None:
        """The next non-empty content delta, or None at the end of the stream."""
        async for chunk in iterator:
            if not chunk.choices:
                continue
            text = chunk.choices[0].delta.content
            if text:
                return str(text)
        return None

    async def check(self) -> None:
        try:
            await self._client.models.list(timeout=min(3.0, self._settings.timeout))
        except openai.NotFoundError:
            return  # Some servers have no /models; reachable is what matters here.
        except openai.OpenAIError as exc:
            raise _classify(exc, self.base_url) from exc

    async def aclose(self) -> None:
        await self._client.close()
