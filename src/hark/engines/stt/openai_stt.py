"""OpenAI's transcription endpoint, or any server that copies it (speaches, LocalAI, vLLM, Groq...).

The utterance is uploaded whole as a 16 kHz PCM16 WAV: the endpoint has no streaming input, and
WAV is the one format every compatible server decodes without ffmpeg surprises.
"""

from __future__ import annotations

import asyncio
import io
import wave
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import openai

from hark.audio import float_to_pcm16
from hark.engines.base import Float32Array, STTCapabilities, Transcript, asked_language
from hark.engines.openai_client import check_models, classify
from hark.engines.provider_common import api_key
from hark.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

SAMPLE_RATE = 16_000
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini-transcribe"
KEY_ENV = "OPENAI_API_KEY"
OPTIONS = ("prompt", "temperature")


def to_wav(audio: Float32Array, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono PCM16 WAV bytes of ``audio``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(float_to_pcm16(audio))
    return buffer.getvalue()


class OpenAISTT:
    sample_rate = SAMPLE_RATE
    capabilities = STTCapabilities(streaming=False, interim_results=False)

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        language: str | None = None,
        timeout: float = 5.0,
        total_timeout: float = 120.0,
        options: dict[str, Any] | None = None,
        name: str = "openai",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"stt provider {name}: base_url must be http:// or https://, not {base_url}")
        unknown = set(options or {}) - set(OPTIONS)
        if unknown:
            raise ConfigError(
                f"stt provider {name}: unknown option(s) {', '.join(sorted(unknown))}; known: "
                + ", ".join(OPTIONS)
            )
        self.name = name
        self.base_url = base_url
        self.model = model
        self.language = language
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.options = dict(options or {})
        # The fallback chain decides about retries, so the SDK makes exactly one attempt. Local
        # servers often want no key, but the SDK insists on one.
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=timeout
        )

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> OpenAISTT:
        base_url = provider.base_url or DEFAULT_BASE_URL
        key, env = api_key(provider, KEY_ENV)
        # OpenAI's own endpoint always wants a key: say so at start-up, not on the first turn.
        if key is None and urlsplit(base_url).hostname == "api.openai.com":
            raise ConfigError(
                f"stt provider {provider.label}: no OpenAI API key; set the "
                f"{env} environment variable (or api_key_file / api_key)"
            )
        return cls(
            api_key=key,
            base_url=base_url,
            model=provider.model or DEFAULT_MODEL,
            language=provider.language or settings.stt.language,
            timeout=provider.timeout,
            total_timeout=provider.total_timeout,
            options=provider.options,
            name=provider.label,
        )

    @property
    def where(self) -> str:
        return f"the transcription endpoint at {self.base_url}"

    async def transcribe(
        self, audio: Float32Array, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        language = asked_language(language, self.language)
        if audio.size == 0:
            return Transcript(text="", language=language)
        extra: dict[str, Any] = dict(self.options)
        if language:
            extra["language"] = language
        try:
            # The SDK's timeout bounds each wait for bytes; this bounds the whole attempt.
            async with asyncio.timeout(self.total_timeout):
                result: Any = await self._client.audio.transcriptions.create(
                    model=self.model,
                    file=("audio.wav", to_wav(audio), "audio/wav"),
                    response_format="json",
                    **extra,
                )
        except TimeoutError as exc:
            raise EngineError(f"{self.where} timed out", retryable=True, engine=self.name) from exc
        except openai.OpenAIError as exc:
            raise classify(exc, self.where, self.name) from exc
        except ValueError as exc:  # A 200 whose body is not JSON.
            raise self._malformed() from exc
        # Some compatible servers answer plain text despite response_format=json.
        text = result if isinstance(result, str) else getattr(result, "text", None)
        if not isinstance(text, str):
            raise self._malformed()
        return Transcript(text=text.strip(), language=language, duration_s=audio.size / SAMPLE_RATE)

    def _malformed(self) -> EngineError:
        return EngineError(f"{self.where} sent a malformed response", retryable=True, engine=self.name)

    async def check(self) -> None:
        """GET /models: free, authenticated, sends no audio."""
        await check_models(self._client, self.timeout, self.where, self.name)

    async def aclose(self) -> None:
        await self._client.close()
