"""ElevenLabs streaming TTS over HTTP. Asks for raw PCM16 so nothing needs decoding here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from hark.engines.base import TTSCapabilities
from hark.engines.provider_common import TOO_EARLY, Deadlines, pcm16_stream, require_api_key, status_error
from hark.errors import ConfigError, EngineError, EngineUnavailable

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_MODEL = "eleven_flash_v2_5"
KEY_ENV = "ELEVENLABS_API_KEY"
PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
"""The ``pcm_<rate>`` output formats ElevenLabs offers (44100 and up need a paid tier)."""


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
            api_key=require_api_key(provider, KEY_ENV, "tts"),
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

    def _status_error(self, response: httpx.Response, detail: str = "") -> EngineError:
        retry_after = response.headers.get("retry-after")
        return status_error(
            response.status_code, retry_after, self.where, self.name, detail, also_retryable=TOO_EARLY
        )

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
        deadlines = Deadlines(self.timeout, self.total_timeout)
        response: httpx.Response | None = None
        try:
            async with deadlines.wait():
                response = await self._client.send(request, stream=True)
                if response.status_code != 200:
                    detail = (await response.aread())[:300].decode("utf-8", "replace")
                    raise self._status_error(response, detail)
            async for pcm in pcm16_stream(response.aiter_bytes(), deadlines, self.where, self.name):
                yield pcm
        except TimeoutError as exc:
            raise deadlines.timed_out(self.where, self.name) from exc
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
            raise self._status_error(response)

    async def aclose(self) -> None:
        await self._client.aclose()
