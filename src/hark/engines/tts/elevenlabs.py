"""ElevenLabs streaming TTS over HTTP. Asks for raw PCM16 so nothing needs decoding here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from hark.engines.base import TTSCapabilities
from hark.errors import ConfigError, EngineError, EngineUnavailable, parse_retry_after

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_MODEL = "eleven_flash_v2_5"
KEY_ENV = "ELEVENLABS_API_KEY"
PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
"""The ``pcm_<rate>`` output formats ElevenLabs offers (44100 and up need a paid tier)."""
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


def provider_key(provider: ProviderConfig, default_env: str) -> str:
    """The provider's API key, read from ``default_env`` unless the config names another source."""
    if provider.api_key_env is None and provider.api_key is None and provider.api_key_file is None:
        provider = provider.model_copy(update={"api_key_env": default_env})
    key = provider.secret()
    if not key:
        source = provider.api_key_env or default_env
        raise ConfigError(
            f"tts provider {provider.label}: no API key; set the environment variable {source} "
            "(or api_key_env, api_key_file or api_key in the provider's config)"
        )
    return key


def status_error(
    status: int, retry_after: str | None, where: str, engine: str, detail: str = ""
) -> EngineError:
    """An HTTP error status as a hark error: rate limits, timeouts and 5xx are worth retrying."""
    message = f"{where} answered HTTP {status}" + (f": {detail}" if detail else "")
    retryable = status in RETRYABLE_STATUS or status >= 500
    return EngineError(
        message, retryable=retryable, engine=engine, retry_after=parse_retry_after(retry_after)
    )


def whole_samples(data: bytes) -> tuple[bytes, bytes]:
    """Split off an odd trailing byte: network chunks need not end on a sample boundary."""
    cut = len(data) - len(data) % 2
    return data[:cut], data[cut:]


class ElevenLabsTTS:
    capabilities = TTSCapabilities(streaming=True)

    def __init__(
        self,
        *,
        api_key: str,
        voice: str,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        sample_rate: int = 24000,
        timeout: float = 5.0,
        total_timeout: float = 120.0,
        voice_settings: dict[str, Any] | None = None,
        name: str = "elevenlabs",
    ) -> None:
        if sample_rate not in PCM_RATES:
            raise ConfigError(
                f"tts provider {name}: output_format pcm_{sample_rate} is not one of {PCM_RATES}"
            )
        self.name, self.voice, self.model, self.sample_rate = name, voice, model, sample_rate
        self.base_url, self.timeout, self.total_timeout = base_url, timeout, total_timeout
        self.voice_settings = voice_settings
        # Our own deadlines (first byte, whole attempt) govern; httpx's only bound the connect.
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"xi-api-key": api_key},
            timeout=httpx.Timeout(total_timeout, connect=timeout),
        )

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> ElevenLabsTTS:
        if not provider.voice:
            raise ConfigError(f"tts provider {provider.label}: voice (an ElevenLabs voice_id) is required")
        base_url = provider.base_url or DEFAULT_BASE_URL
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"tts provider {provider.label}: base_url must be http:// or https://")
        fmt = str(provider.options.get("output_format", "pcm_24000"))
        rate = fmt.removeprefix("pcm_")
        if not rate.isdigit():
            raise ConfigError(f"tts provider {provider.label}: output_format must be pcm_<rate>, not {fmt!r}")
        return cls(
            api_key=provider_key(provider, KEY_ENV),
            voice=provider.voice,
            base_url=base_url,
            model=provider.model or DEFAULT_MODEL,
            sample_rate=int(rate),
            timeout=provider.timeout,
            total_timeout=provider.total_timeout,
            voice_settings=provider.options.get("voice_settings"),
            name=provider.label,
        )

    @property
    def where(self) -> str:
        return f"ElevenLabs at {self.base_url}"

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        body: dict[str, Any] = {"text": text, "model_id": self.model}
        if self.voice_settings:
            body["voice_settings"] = self.voice_settings
        request = self._client.build_request(
            "POST",
            f"/v1/text-to-speech/{self.voice}/stream",
            params={"output_format": f"pcm_{self.sample_rate}"},
            json=body,
        )
        now = asyncio.get_running_loop().time()
        end = now + self.total_timeout
        first = min(end, now + self.timeout)
        started = False
        response: httpx.Response | None = None
        try:
            async with asyncio.timeout_at(first):
                response = await self._client.send(request, stream=True)
                if response.status_code != 200:
                    detail = (await response.aread())[:300].decode("utf-8", "replace")
                    raise status_error(
                        response.status_code,
                        response.headers.get("retry-after"),
                        self.where,
                        self.name,
                        detail,
                    )
            chunks = response.aiter_bytes()
            carry = b""
            while True:
                # The deadline wraps only the wait, never a yield, so the consumer's time is its own.
                async with asyncio.timeout_at(end if started else first):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    break
                started = True
                pcm, carry = whole_samples(carry + chunk)
                if pcm:
                    yield pcm
            if carry:
                raise EngineError(
                    f"{self.where} sent a stream that is not whole PCM16 samples",
                    retryable=True,
                    engine=self.name,
                )
        except TimeoutError as exc:
            stage = "mid-stream" if started else "before the first byte"
            raise EngineError(f"{self.where} timed out {stage}", retryable=True, engine=self.name) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise EngineUnavailable(f"cannot connect to {self.where}", engine=self.name) from exc
        except httpx.HTTPError as exc:
            raise EngineError(
                f"{self.where} broke off the stream: {type(exc).__name__}", retryable=True, engine=self.name
            ) from exc
        finally:
            if response is not None:
                await response.aclose()

    async def check(self) -> None:
        # Reading the voice's metadata is free, and proves reachability, the key and the voice at once.
        try:
            response = await self._client.get(f"/v1/voices/{self.voice}", timeout=min(3.0, self.timeout))
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"cannot connect to {self.where}", engine=self.name) from exc
        if response.status_code in (401, 403) and "missing_permissions" in response.text:
            return  # A key scoped to text-to-speech only may not read voices; it is still valid.
        if response.status_code != 200:
            raise status_error(
                response.status_code, response.headers.get("retry-after"), self.where, self.name
            )

    async def aclose(self) -> None:
        await self._client.aclose()
