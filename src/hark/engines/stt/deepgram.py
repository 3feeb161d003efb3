"""Deepgram live transcription, spoken directly over its WebSocket API with ``websockets``.

One utterance is one connection: PCM16 goes up in ~100 ms binary frames, then CloseStream;
Results messages come back (interim, then final per segment) and Deepgram closes the socket once
everything is flushed. The wire protocol is small, so no SDK is needed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidHandshake, InvalidStatus

from hark.audio import float_to_pcm16
from hark.engines.base import Float32Array, STTCapabilities, Transcript, asked_language
from hark.engines.provider_common import api_key, status_error
from hark.errors import ConfigError, EngineError, EngineUnavailable

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

SAMPLE_RATE = 16_000
DEFAULT_BASE_URL = "wss://api.deepgram.com"
DEFAULT_MODEL = "nova-3"
KEY_ENV = "DEEPGRAM_API_KEY"
PIECE_BYTES = SAMPLE_RATE * 2 // 10
"""100 ms of PCM16 per frame: inside Deepgram's recommended 20-250 ms."""
OPTIONS = ("endpointing", "smart_format")
_FIXED_PARAMS = {
    "encoding": "linear16",
    "sample_rate": str(SAMPLE_RATE),
    "channels": "1",
    "interim_results": "true",
    "punctuate": "true",
}
_WS_SCHEME = {"http": "ws", "https": "wss"}
_HTTP_SCHEME = {"ws": "http", "wss": "https"}

Emit = Callable[["InterimTranscript | Exception | None"], None]


@dataclass(frozen=True, slots=True)
class InterimTranscript:
    """One Results message: ``is_final`` text will not be revised; ``speech_final`` marks an
    endpoint (a pause) after it."""

    text: str
    is_final: bool
    speech_final: bool = False


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


async def _once(audio: Float32Array) -> AsyncIterator[Float32Array]:
    yield audio


class DeepgramSTT:
    sample_rate = SAMPLE_RATE
    capabilities = STTCapabilities(streaming=True, interim_results=True)

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
        name: str = "deepgram",
    ) -> None:
        self.name = name
        scheme, _, rest = base_url.rstrip("/").partition("://")
        root = rest.removesuffix("/listen").removesuffix("/v1")  # accept a host, .../v1 or .../v1/listen
        self.listen_url = f"{_WS_SCHEME.get(scheme, scheme)}://{root}/v1/listen"
        self.projects_url = f"{_HTTP_SCHEME.get(scheme, scheme)}://{root}/v1/projects"
        # Self-hosted Deepgram needs no key, so none means no Authorization header at all.
        self._headers = {"Authorization": f"Token {api_key}"} if api_key else {}
        self.params = {"model": model, **_FIXED_PARAMS}
        for key, value in (options or {}).items():
            if key not in OPTIONS:
                raise ConfigError(f"stt provider {name}: unknown option {key!r}; known: {', '.join(OPTIONS)}")
            self.params[key] = _query_value(value)
        self.language = language
        self.timeout = timeout
        self.total_timeout = total_timeout

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> DeepgramSTT:
        base_url = provider.base_url or DEFAULT_BASE_URL
        key, env = api_key(provider, KEY_ENV)
        # Deepgram's cloud always wants a key: say so at start-up rather than on the first turn.
        if key is None and (urlsplit(base_url).hostname or "").endswith("deepgram.com"):
            raise ConfigError(
                f"stt provider {provider.label}: no Deepgram API key; set the "
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
        return f"Deepgram at {self.listen_url}"

    def url(self, language: str | None = None) -> str:
        params = dict(self.params)
        if lang := asked_language(language, self.language):
            params["language"] = lang
        return f"{self.listen_url}?{urlencode(params)}"

    async def transcribe(
        self, audio: Float32Array, *, language: str | None = None, deterministic: bool = False
    ) -> Transcript:
        spoken = asked_language(language, self.language)  # None: Deepgram's own default
        if audio.size == 0:
            return Transcript(text="", language=spoken)
        finals = [r.text async for r in self.stream(_once(audio), language=language) if r.is_final and r.text]
        return Transcript(text=" ".join(finals), language=spoken, duration_s=audio.size / SAMPLE_RATE)

    async def stream(
        self, audio: AsyncIterator[Float32Array], *, language: str | None = None
    ) -> AsyncIterator[InterimTranscript]:
        """Results for audio fed as it arrives, interim and final, in order. The whole stream is
        bounded by ``total_timeout``; once the audio has ended each result must come within
        ``timeout``. Raises EngineError (EngineUnavailable when Deepgram cannot be reached)."""
        # The socket work runs in its own task so that deadlines never wrap this generator's yields.
        results: asyncio.Queue[InterimTranscript | Exception | None] = asyncio.Queue()
        worker = asyncio.create_task(self._session(audio, language, results.put_nowait))
        try:
            while (item := await results.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            worker.cancel()
            await asyncio.wait({worker})

    async def _session(self, audio: AsyncIterator[Float32Array], language: str | None, emit: Emit) -> None:
        try:
            async with asyncio.timeout(self.total_timeout) as budget:
                ws = await self._connect(language)
                try:
                    await self._exchange(ws, audio, budget, emit)
                except BaseException:
                    ws.transport.abort()  # No close handshake on a failed stream: it could stall too.
                    raise
                await ws.close()
        except TimeoutError:
            emit(self._fail("sent no result in time"))
        except Exception as exc:
            emit(exc)
        else:
            emit(None)

    async def _connect(self, language: str | None) -> ClientConnection:
        try:
            # Compression only costs CPU on PCM; open_timeout bounds the TLS + upgrade round trips.
            return await connect(
                self.url(language),
                additional_headers=self._headers,
                open_timeout=self.timeout,
                compression=None,
            )
        except InvalidStatus as exc:
            headers = exc.response.headers
            raise self._rejected(
                exc.response.status_code, headers.get("dg-error"), headers.get("retry-after")
            ) from exc
        except TimeoutError as exc:  # Before OSError: TimeoutError is one.
            raise self._fail("did not accept in time") from exc
        except OSError as exc:
            raise EngineUnavailable(f"cannot connect to {self.where}: {exc}", engine=self.name) from exc
        except InvalidHandshake as exc:
            raise self._fail(f"failed the upgrade: {exc}") from exc

    def _fail(self, what: str, *, retryable: bool = True) -> EngineError:
        return EngineError(f"{self.where} {what}", retryable=retryable, engine=self.name)

    def _rejected(self, status: int, detail: str | None, retry_after: str | None) -> EngineError:
        return status_error(status, retry_after, self.where, self.name, detail)

    async def _exchange(
        self, ws: ClientConnection, audio: AsyncIterator[Float32Array], budget: asyncio.Timeout, emit: Emit
    ) -> None:
        loop = asyncio.get_running_loop()
        hard = budget.when() or loop.time() + self.total_timeout
        sent_all = False

        def arm() -> None:
            # All audio is handed over: from now on each result must come within `timeout`.
            nonlocal sent_all
            sent_all = True
            budget.reschedule(min(hard, loop.time() + self.timeout))

        sender = asyncio.create_task(self._send(ws, audio, arm, emit))
        try:
            async for message in ws:
                if (result := self._parse(message)) is not None:
                    emit(result)
                if sent_all:
                    arm()
        except ConnectionClosedError as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, "")
            # 1008 is Deepgram saying it cannot decode the audio: sending it again will not help.
            what = f"closed the stream mid-way (code {code}{': ' + reason if reason else ''})"
            raise self._fail(what, retryable=code != 1008) from exc
        finally:
            sender.cancel()
            await asyncio.wait({sender})
        if not sent_all:
            raise self._fail("ended the stream before all audio was sent")

    async def _send(
        self, ws: ClientConnection, audio: AsyncIterator[Float32Array], arm: Callable[[], None], emit: Emit
    ) -> None:
        try:
            async for chunk in audio:
                pcm = float_to_pcm16(np.asarray(chunk, dtype=np.float32))
                for start in range(0, len(pcm), PIECE_BYTES):
                    await ws.send(pcm[start : start + PIECE_BYTES])
            arm()
            await ws.send(json.dumps({"type": "CloseStream"}))
        except ConnectionClosed:
            pass  # The receiving side reports why the connection ended.
        except Exception as exc:
            emit(exc)  # The caller's audio source failed: the stream ends with its error.

    def _parse(self, message: str | bytes) -> InterimTranscript | None:
        try:
            data = json.loads(message)
            kind = data.get("type")
            if kind == "Error":
                detail = data.get("description") or data.get("message") or "unknown error"
                raise self._fail(f"reported: {detail}")
            if kind != "Results":
                return None  # Metadata, SpeechStarted, UtteranceEnd: nothing to transcribe.
            text = data["channel"]["alternatives"][0]["transcript"]
            if not isinstance(text, str):
                raise TypeError("transcript is not a string")
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise self._fail("sent a malformed message") from exc
        is_final, speech_final = bool(data.get("is_final")), bool(data.get("speech_final"))
        if not text.strip() and not speech_final:
            return None  # Silence: Deepgram sends empty results while nothing is said.
        return InterimTranscript(text.strip(), is_final, speech_final)

    async def check(self) -> None:
        """GET /v1/projects: free, authenticated, and sends no audio, so it proves both that the
        host answers and that the key is valid. 403 (a key scoped to transcription only) and 404
        (self-hosted Deepgram has no management API) still mean the listen endpoint can serve."""
        try:
            async with httpx.AsyncClient(timeout=min(3.0, self.timeout)) as client:
                response = await client.get(self.projects_url, headers=self._headers)
        except httpx.HTTPError as exc:
            where = f"cannot reach {self.where}: {type(exc).__name__}"
            raise EngineUnavailable(where, engine=self.name) from exc
        status = response.status_code
        if status == 401:
            raise self._rejected(status, response.headers.get("dg-error"), None)
        if status >= 400 and status not in (403, 404):
            raise EngineUnavailable(f"{self.where} answered HTTP {status}", engine=self.name)

    async def aclose(self) -> None:
        return None  # One connection per utterance: nothing is held between calls.
