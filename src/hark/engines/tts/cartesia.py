"""Cartesia Sonic over its WebSocket API, asking for raw PCM16 (``pcm_s16le``) chunks."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from hark.engines.base import TTSCapabilities
from hark.engines.provider_common import TOO_EARLY, Deadlines, pcm16_stream, require_api_key, status_error
from hark.errors import ConfigError, EngineError, EngineUnavailable

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

DEFAULT_BASE_URL = "wss://api.cartesia.ai"
DEFAULT_MODEL = "sonic-2"
API_VERSION = "2025-04-16"
"""The ``Cartesia-Version`` this engine was written against; options.cartesia_version overrides."""
KEY_ENV = "CARTESIA_API_KEY"
PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)


class CartesiaTTS:
    capabilities = TTSCapabilities(streaming=True)

    def __init__(
        self,
        *,
        api_key: str,
        voice: str,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        sample_rate: int = 24000,
        version: str = API_VERSION,
        language: str | None = None,
        timeout: float = 5.0,
        total_timeout: float = 120.0,
        name: str = "cartesia",
    ) -> None:
        if sample_rate not in PCM_RATES:
            raise ConfigError(f"tts provider {name}: sample_rate {sample_rate} is not one of {PCM_RATES}")
        self.name, self.voice, self.model, self.sample_rate = name, voice, model, sample_rate
        self.base_url, self.language = base_url, language
        self.timeout, self.total_timeout = timeout, total_timeout
        self._url = f"{base_url}/tts/websocket?{urlencode({'cartesia_version': version})}"
        self._headers = {"Authorization": f"Bearer {api_key}"}

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> CartesiaTTS:
        if not provider.voice:
            raise ConfigError(f"tts provider {provider.label}: voice (a Cartesia voice id) is required")
        base_url = provider.base_url or DEFAULT_BASE_URL
        # An https:// base (as for Cartesia's REST API) names the same host as its wss:// socket.
        base_url = base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return cls(
            api_key=require_api_key(provider, KEY_ENV, "tts"),
            voice=provider.voice,
            base_url=base_url,
            model=provider.model or DEFAULT_MODEL,
            sample_rate=int(provider.options.get("sample_rate", 24000)),
            version=str(provider.options.get("cartesia_version", API_VERSION)),
            language=provider.language,
            timeout=provider.timeout,
            total_timeout=provider.total_timeout,
            name=provider.label,
        )

    @property
    def where(self) -> str:
        return f"Cartesia at {self.base_url}"

    def _error(self, message: str, *, retryable: bool = True) -> EngineError:
        return EngineError(f"{self.where} {message}", retryable=retryable, engine=self.name)

    def _status_error(self, status: int, retry_after: str | None, detail: str) -> EngineError:
        return status_error(status, retry_after, self.where, self.name, detail, also_retryable=TOO_EARLY)

    async def _connect(self) -> ClientConnection:
        # A connection per utterance: one handshake of latency, but no demultiplexer shared between
        # concurrent sessions and nothing stale to recover after a network blip.
        try:
            return await connect(
                self._url, additional_headers=self._headers, open_timeout=None, close_timeout=1
            )
        except InvalidStatus as exc:
            response = exc.response
            detail = response.body.decode("utf-8", "replace")[:300] if response.body else ""
            retry_after = response.headers.get("Retry-After")
            raise self._status_error(response.status_code, retry_after, detail) from exc
        except InvalidURI as exc:
            raise ConfigError(f"tts provider {self.name}: invalid base_url {self.base_url}") from exc
        except (OSError, InvalidHandshake) as exc:
            raise EngineUnavailable(f"cannot connect to {self.where}: {exc}", engine=self.name) from exc

    def _request(self, text: str) -> str:
        request: dict[str, Any] = {
            "model_id": self.model,
            "transcript": text,
            "voice": {"mode": "id", "id": self.voice},
            "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": self.sample_rate},
            "context_id": uuid.uuid4().hex,
            "continue": False,  # One whole utterance per request; hark splits sentences itself.
        }
        if self.language:
            request["language"] = self.language
        return json.dumps(request)

    def _audio(self, raw: str | bytes) -> bytes | None:
        """The PCM in one server message; None when the message says the stream is done."""
        try:
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "chunk":
                return base64.b64decode(message["data"], validate=True)
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as exc:
            raise self._error("sent a malformed message") from exc
        if kind == "done":
            return None
        if kind == "error":
            status = message.get("status_code")
            detail = message.get("message") or message.get("error") or message.get("title") or "error"
            if isinstance(status, int) and status >= 400:
                raise self._status_error(status, None, str(detail)[:300])
            raise self._error(f"reported an error: {str(detail)[:300]}")
        return b""  # timestamps, flush_done and future message types carry no audio

    async def _received_audio(self, ws: ClientConnection) -> AsyncIterator[bytes]:
        """The audio of each message until the one that says the stream is done."""
        while (audio := self._audio(await ws.recv())) is not None:
            if audio:  # Messages without audio do not start the stream.
                yield audio

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        deadlines = Deadlines(self.timeout, self.total_timeout)
        ws: ClientConnection | None = None
        try:
            async with deadlines.wait():
                ws = await self._connect()
                await ws.send(self._request(text))
            audio = self._received_audio(ws)
            async for pcm in pcm16_stream(audio, deadlines, self.where, self.name, "audio"):
                yield pcm
        except TimeoutError as exc:
            raise deadlines.timed_out(self.where, self.name) from exc
        except ConnectionClosed as exc:
            raise self._error("closed the stream before it was done") from exc
        finally:
            if ws is not None:
                await ws.close()

    async def check(self) -> None:
        # The WebSocket handshake authenticates the key and proves reachability; no speech is paid for.
        try:
            async with asyncio.timeout(min(3.0, self.timeout)):
                ws = await self._connect()
            await ws.close()
        except TimeoutError as exc:
            raise EngineUnavailable(f"{self.where} did not answer the handshake", engine=self.name) from exc

    async def aclose(self) -> None:
        return None  # Each utterance opens and closes its own connection.
