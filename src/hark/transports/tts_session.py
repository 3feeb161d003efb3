"""WebSocket /v1/tts/sessions: incremental text in, continuous speech out.

The client appends text in pieces as it has it (an LLM's tokens, a script) and receives audio
continuously. hark speaks each append as given, cutting it only at sentence boundaries inside
that append, never joining or re-segmenting across appends: the client paces and segments.

Client events: ``input_text.append {text}``, ``session.close`` (speak what is queued, then
close), ``session.cancel`` (stop at once, drop what is queued). Server events: ``session.created
{session_id, sample_rate, format}``, ``audio.delta {segment, audio}``, ``segment.done {segment}``,
``session.closed {reason}``, ``error {error}``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocket

from hark.audio import PCM16Resampler
from hark.engines.base import TTS
from hark.errors import EngineError
from hark.pipeline.conversation import new_id
from hark.pipeline.sentences import split_sentences
from hark.transports.outbox import Outbox
from hark.transports.socket import Message, SocketLink, close_quietly

log = logging.getLogger("hark.tts_session")

OUTPUT_RATE = 24_000
MAX_APPEND_CHARS = 4096
MAX_QUEUED_SEGMENTS = 256


class Append(BaseModel):
    type: Literal["input_text.append"]
    text: str = Field(max_length=MAX_APPEND_CHARS)
    event_id: str | None = Field(None, max_length=512)


class Close(BaseModel):
    type: Literal["session.close", "session.cancel"]
    event_id: str | None = Field(None, max_length=512)


_EVENT: TypeAdapter[Append | Close] = TypeAdapter(Append | Close)


class TTSSession:
    def __init__(self, websocket: WebSocket, tts: TTS, *, limit_bytes: int = 256 * 1024) -> None:
        self.ws = websocket
        self.tts = tts
        self.id = new_id("tts")
        self._segments: asyncio.Queue[str | None] = asyncio.Queue(maxsize=MAX_QUEUED_SEGMENTS)
        self.outbox = Outbox(limit_bytes, event_ids=False)
        self.link = SocketLink(websocket, self.outbox)
        self._ended = asyncio.Event()
        self._reason = "disconnected"
        self._speaker: asyncio.Task[None] | None = None
        self._counter = 0

    async def run(self) -> None:
        self.link.start_writing()
        self._send(
            {"type": "session.created", "session_id": self.id, "sample_rate": OUTPUT_RATE, "format": "pcm16"}
        )
        self._speaker = speaker = asyncio.create_task(self._speak())
        try:
            await self.link.serve(self._receive, self._ended.wait())
        finally:
            if self._reason != "closed":
                speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError, EngineError):
                await speaker
            self._send({"type": "session.closed", "reason": self._reason})
            await self.link.flushed(time.monotonic() + 2.0)
            await close_quietly(self.ws, 1000, "")
            await self.link.stopped_writing()

    def _end(self, reason: str) -> None:
        self._reason = reason
        self._ended.set()

    async def _receive(self, message: Message) -> None:
        text = message.get("text")
        if text is None:
            self._error("invalid_event", "binary frames are not accepted; send JSON events", None)
            return
        try:
            event = _EVENT.validate_json(text)
        except ValidationError as exc:
            self._error("invalid_event", exc.errors()[0]["msg"], None)
            return
        if isinstance(event, Append):
            for sentence in split_sentences(event.text):
                if self._segments.full():
                    self._error("queue_full", "too much text queued; wait for audio", event.event_id)
                    break
                self._segments.put_nowait(sentence)
        elif event.type == "session.cancel":
            self._end("cancelled")
        else:
            await self._segments.put(None)
            if self._speaker is not None:
                await self._speaker
            self._end("closed")

    async def _speak(self) -> None:
        while (sentence := await self._segments.get()) is not None:
            segment = self._counter
            self._counter += 1
            resampler = PCM16Resampler(self.tts.sample_rate, OUTPUT_RATE)
            try:
                async for pcm in self.tts.synthesize(sentence):
                    await self._audio(segment, resampler.process(pcm))
                await self._audio(segment, resampler.process(b"", last=True))
            except EngineError as exc:
                self._error("engine_error", str(exc), None)
                continue
            self._send({"type": "segment.done", "segment": segment})

    async def _audio(self, segment: int, pcm: bytes) -> None:
        if pcm:
            # The audio is what the client asked for: wait for a slow reader rather than drop it.
            await self.outbox.room()
            self._send({"type": "audio.delta", "segment": segment, "audio": base64.b64encode(pcm).decode()})

    def _error(self, code: str, message: str, event_id: str | None) -> None:
        error = {"type": "invalid_request_error", "code": code, "message": message, "event_id": event_id}
        self._send({"type": "error", "error": error})

    def _send(self, event: dict[str, Any]) -> None:
        self.outbox.put(event)
