"""One Wyoming connection: events in, dispatched to the asr, tts and handle programs.

A bad event gets an ``error`` event ``{text, code}`` and the connection goes on; an event that
breaks the framing (oversized, malformed header) gets one and the connection is closed, as is
one idle past ``wyoming.idle_timeout_s``. A client that vanishes mid-reply ends its connection
alone: its tasks are cancelled and nothing else is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from hark.config import WyomingSettings
from hark.engines.base import LLM, STT, TTS
from hark.observability.metrics import Metrics
from hark.pipeline.tools import Toolbox
from hark.transports.wyoming import tts
from hark.transports.wyoming.asr import Transcription
from hark.transports.wyoming.audio_in import AudioFormat
from hark.transports.wyoming.errors import WyomingError
from hark.transports.wyoming.framing import BoundedReader, read_event
from hark.transports.wyoming.handle import Conversations, handle
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

log = logging.getLogger("hark.wyoming")

MAX_LANGUAGE_CHARS = 16
LINGER_S = 1.0


@dataclass(slots=True)
class Services:
    """What every connection shares: the engines (fallback chains) and the server's settings."""

    settings: WyomingSettings
    stt: STT
    tts: TTS
    llm: LLM | None
    tools: Toolbox | None
    conversations: Conversations
    info: Event
    voices: frozenset[str]
    language: str | None
    partial_interval_s: float
    metrics: Metrics | None = None


def _text(data: dict[str, Any], key: str, max_chars: int) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise WyomingError("invalid_value", f"{key} must be a string")
    if len(value) > max_chars:
        raise WyomingError("max_length_reached", f"{key} exceeds {max_chars} characters")
    return value


def _check_voice(data: dict[str, Any], services: Services) -> None:
    voice = data.get("voice")
    if voice is None:
        return
    if not isinstance(voice, dict):
        raise WyomingError("invalid_value", "voice must be an object")
    name = voice.get("name")
    if name is not None and name not in services.voices:
        shown = str(name)[:64]
        raise WyomingError("invalid_value", f"unknown voice {shown!r}; describe lists this server's voices")
    if data.get("text_format") not in (None, "text"):
        raise WyomingError("invalid_value", "only plain text can be synthesised (text_format 'text')")


class Connection(AsyncEventHandler):
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, services: Services
    ) -> None:
        super().__init__(reader, writer)
        self._services = services
        self._settings = services.settings
        self._events = BoundedReader(reader, services.settings.max_event_bytes)
        self._send_lock = asyncio.Lock()
        self._language = services.language
        self._asr: Transcription | None = None
        self._discarding = False
        """An utterance was refused part-way: its remaining chunks are dropped until audio-stop."""
        self._stream: tts.TextStream | None = None
        self.close_reason = "client"

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Read events until the client hangs up, ``drain`` is called, or a fatal error."""
        try:
            while True:
                try:
                    async with asyncio.timeout(self._settings.idle_timeout_s):
                        event = await read_event(self._events)
                except TimeoutError:
                    self.close_reason = "idle"
                    await self._fail(WyomingError("idle_timeout", "no event for too long; closing"))
                    break
                except WyomingError as exc:  # the framing is broken: nothing after it can be read
                    self.close_reason = "policy"
                    await self._fail(exc)
                    await self._linger()
                    break
                if event is None:
                    break
                try:
                    if not await self.handle_event(event):
                        break
                except WyomingError as exc:
                    await self._fail(exc)
                    if exc.fatal:
                        self.close_reason = "policy"
                        break
        except (ConnectionError, OSError):
            if self.close_reason != "timeout":
                self.close_reason = "client"  # the client vanished mid-reply
        except Exception:
            # A bug of hark's: this connection ends with a generic error; the server goes on.
            log.exception("wyoming connection failed")
            self.close_reason = "error"
            await self._fail(WyomingError("server_error", "internal error; closing"))
        finally:
            await self.disconnect()
            self.writer.close()  # sends what is buffered first...
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                async with asyncio.timeout(0 if self.close_reason == "timeout" else LINGER_S):
                    await self.writer.wait_closed()
            self.writer.transport.abort()  # ...unless the client does not read it

    async def _linger(self) -> None:
        """Half-close, then discard what the client is still sending (bounded in bytes and
        time): closing with unread input would reset the connection and lose the error event."""
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            self.writer.write_eof()
        left = self._settings.max_event_bytes
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            async with asyncio.timeout(LINGER_S):
                while left > 0 and (data := await self.reader.read(min(left, 65536))):
                    left -= len(data)

    def drain(self) -> None:
        """Finish the event in progress, then close (server shutdown)."""
        self.close_reason = "shutdown"
        self.reader.feed_eof()

    async def disconnect(self) -> None:
        asr, stream = self._asr, self._stream
        self._asr = self._stream = None
        if asr is not None:
            await asr.aclose()
        if stream is not None:
            await stream.aclose()

    async def write_event(self, event: Event) -> None:
        # Partial transcripts and streamed speech are written from their own tasks.
        async with self._send_lock:
            try:
                async with asyncio.timeout(self._settings.idle_timeout_s):
                    await super().write_event(event)
            except TimeoutError:
                # The client stopped reading: what waits to be sent is bounded by the socket's
                # buffers; the connection is closed rather than held open.
                self.close_reason = "timeout"
                raise ConnectionResetError("the client stopped reading") from None

    async def _fail(self, error: WyomingError) -> None:
        log.info("wyoming error", extra={"code": error.code})
        if self._services.metrics is not None:
            self._services.metrics.error(error.code)
        with contextlib.suppress(ConnectionError, OSError):
            await self.write_event(Error(text=error.text, code=error.code).event())

    # -- dispatch ------------------------------------------------------------------------

    async def handle_event(self, event: Event) -> bool:
        kind, data = event.type, event.data
        if Describe.is_type(kind):
            await self.write_event(self._services.info)
        elif Ping.is_type(kind):
            await self.write_event(Pong(text=data.get("text")).event())
        elif Transcribe.is_type(kind):
            if data.get("language") is not None:
                # Whisper knows "en", not "en-US" or "en_US" (as clients may send it).
                language = _text(data, "language", MAX_LANGUAGE_CHARS)
                self._language = language.replace("_", "-").split("-", 1)[0].lower() or self._language
        elif AudioStart.is_type(kind):
            await self._audio_start(data)
        elif AudioChunk.is_type(kind):
            await self._audio_chunk(data, event.payload or b"")
        elif AudioStop.is_type(kind):
            await self._audio_stop()
        elif Synthesize.is_type(kind):
            if self._stream is None:  # inside a stream it only repeats the text, for old servers
                text = _text(data, "text", self._settings.max_text_chars)
                _check_voice(data, self._services)
                await tts.synthesize(self._services.tts, text, self.write_event)
        elif SynthesizeStart.is_type(kind):
            await self._synthesize_start(data)
        elif SynthesizeChunk.is_type(kind):
            if self._stream is None:
                raise WyomingError("not_started", "synthesize-chunk before synthesize-start")
            self._stream.push(_text(data, "text", self._settings.max_text_chars))
        elif SynthesizeStop.is_type(kind):
            stream, self._stream = self._stream, None
            if stream is None:
                raise WyomingError("not_started", "synthesize-stop before synthesize-start")
            await stream.finish()
        elif Transcript.is_type(kind):
            text = _text(data, "text", self._settings.max_text_chars)
            s = self._services
            await handle(s.conversations, s.llm, s.tools, text, data.get("context"), self.write_event)
        else:
            shown = str(kind)[:64]
            raise WyomingError("unknown_event_type", f"unknown event type {shown!r}")
        return True

    async def _audio_start(self, data: dict[str, Any]) -> None:
        fmt = AudioFormat.from_data(data)
        await self.disconnect_asr()
        self._discarding = False
        self._asr = Transcription(
            self._services.stt,
            fmt,
            language=self._language,
            max_s=self._settings.max_audio_s,
            partial_interval_s=self._services.partial_interval_s,
            send=self.write_event,
        )
        await self._asr.start()

    async def _audio_chunk(self, data: dict[str, Any], payload: bytes) -> None:
        if self._discarding:
            return
        if self._asr is None:
            raise WyomingError("not_started", "audio-chunk before audio-start")
        try:
            self._asr.push(AudioFormat.from_data(data), payload)
        except WyomingError:
            self._discarding = True
            await self.disconnect_asr()
            raise

    async def _audio_stop(self) -> None:
        if self._discarding:
            self._discarding = False
            return
        asr, self._asr = self._asr, None
        if asr is None:
            raise WyomingError("not_started", "audio-stop before audio-start")
        await asr.finish()

    async def disconnect_asr(self) -> None:
        asr, self._asr = self._asr, None
        if asr is not None:
            await asr.aclose()

    async def _synthesize_start(self, data: dict[str, Any]) -> None:
        if self._stream is not None:
            raise WyomingError("already_started", "a text stream is already open; send synthesize-stop first")
        _check_voice(data, self._services)
        self._stream = tts.TextStream(
            self._services.tts, self.write_event, max_chars=self._settings.max_text_chars, fail=self._fail
        )
