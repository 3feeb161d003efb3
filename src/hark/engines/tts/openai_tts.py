"""OpenAI speech (``/v1/audio/speech``) streamed as raw 24 kHz PCM16, through the official SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

import httpx
import openai

from hark.engines.base import TTSCapabilities
from hark.engines.openai_client import check_models, classify
from hark.engines.provider_common import Deadlines, pcm16_stream, require_api_key
from hark.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini-tts"
DEFAULT_VOICE = "alloy"
KEY_ENV = "OPENAI_API_KEY"
SAMPLE_RATE = 24000
"""``response_format="pcm"`` is always 24 kHz mono PCM16 little-endian."""


class OpenAITTS:
    capabilities = TTSCapabilities(streaming=True)
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        voice: str = DEFAULT_VOICE,
        timeout: float = 5.0,
        total_timeout: float = 120.0,
        extra: dict[str, Any] | None = None,
        name: str = "openai",
    ) -> None:
        self.name, self.base_url, self.model, self.voice = name, base_url, model, voice
        self.timeout, self.total_timeout = timeout, total_timeout
        self.extra = extra or {}
        # The fallback chain decides about retries, so the SDK makes exactly one attempt. An httpx
        # client of our own means a broken body raises httpx errors whichever SDK major is installed
        # (3.x is typed for its httpx2 fork but accepts httpx clients; hence the cast).
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=total_timeout,
            http_client=cast("Any", httpx.AsyncClient()),
        )

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> OpenAITTS:
        base_url = provider.base_url or DEFAULT_BASE_URL
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"tts provider {provider.label}: base_url must be http:// or https://")
        # ``instructions`` (tone of voice; gpt-4o-mini-tts) and ``speed`` pass through as given.
        extra: dict[str, Any] = {
            key: provider.options[key] for key in ("instructions", "speed") if key in provider.options
        }
        return cls(
            api_key=require_api_key(provider, KEY_ENV, "tts"),
            base_url=base_url,
            model=provider.model or DEFAULT_MODEL,
            voice=provider.voice or DEFAULT_VOICE,
            timeout=provider.timeout,
            total_timeout=provider.total_timeout,
            extra=extra,
            name=provider.label,
        )

    @property
    def where(self) -> str:
        return f"OpenAI speech at {self.base_url}"

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        deadlines = Deadlines(self.timeout, self.total_timeout)
        request = self._client.audio.speech.with_streaming_response.create(
            model=self.model, voice=self.voice, input=text, response_format="pcm", **self.extra
        )
        try:
            async with deadlines.wait():
                response = await request.__aenter__()
            try:
                async for pcm in pcm16_stream(response.iter_bytes(), deadlines, self.where, self.name):
                    yield pcm
            finally:
                await request.__aexit__(None, None, None)
        except TimeoutError as exc:
            raise deadlines.timed_out(self.where, self.name) from exc
        except openai.OpenAIError as exc:
            raise classify(exc, self.where, self.name) from exc
        except httpx.HTTPError as exc:
            raise EngineError(
                f"{self.where} broke off the stream: {type(exc).__name__}", retryable=True, engine=self.name
            ) from exc

    async def check(self) -> None:
        # Listing models is free and proves reachability and the key; no speech is paid for.
        await check_models(self._client, self.timeout, self.where, self.name)

    async def aclose(self) -> None:
        await self._client.close()
