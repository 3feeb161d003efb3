"""A loopback ElevenLabs (``POST /v1/text-to-speech/{voice_id}/stream`` answering raw PCM16), and
what every TTS stand-in shares: deterministic audio, paced in odd-sized pieces, with knobs a test
turns instead of patching hark."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.contract.faults import Fault, FaultPlan

GARBAGE = b"<html>bad gateway</html>!"
"""What a MALFORMED byte stream ends with: not audio, and an odd length, so not whole samples."""


def tone(samples: int, rate: int) -> bytes:
    """A 440 Hz sine as PCM16 little-endian: deterministic and clearly not silence."""
    t = np.arange(samples, dtype=np.float64) / rate
    return (np.sin(2 * np.pi * 440.0 * t) * 8000).astype("<i2").tobytes()


@dataclass
class Stream:
    """One audio stream a stand-in served."""

    text: str
    sent: int = 0
    """Audio bytes sent so far."""
    done: bool = False


@dataclass
class FakeTTS:
    """Knobs shared by every stand-in. Tests set them, never patch hark."""

    api_key: str = "test-key"
    ms_per_char: int = 10
    """Audio length: this many milliseconds per character of text."""
    pieces: int = 5
    """The audio goes out in about this many pieces, each an odd number of bytes."""
    piece_delay: float = 0.01
    gate: threading.Event | None = None
    """When set up, the stream holds after its first piece until the event is set."""
    fail_status: int | None = None
    """Answer every synthesis request with this HTTP status (the provider's error shape)."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    requests: list[dict[str, Any]] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    closing: bool = False
    """Set when the server shuts down, so a stalled handler lets go."""

    def reset(self) -> None:
        fresh = type(self)()
        for name in ("ms_per_char", "pieces", "piece_delay", "gate", "fail_status", "faults"):
            setattr(self, name, getattr(fresh, name))
        self.requests.clear()
        self.streams.clear()

    @property
    def last(self) -> Stream:
        return self.streams[-1]

    def audio(self, text: str, rate: int) -> bytes:
        return tone(len(text) * rate * self.ms_per_char // 1000, rate)

    def _size(self, total: int) -> int:
        return max(1, total // self.pieces) | 1

    async def play(self, text: str, rate: int, *, limit: int | None = None) -> AsyncIterator[bytes]:
        """The audio for ``text`` in odd-sized, paced pieces; ``limit`` stops after that many."""
        stream = Stream(text)
        self.streams.append(stream)
        pcm = self.audio(text, rate)
        size = self._size(len(pcm))
        for index, start in enumerate(range(0, len(pcm), size)):
            if limit is not None and index >= limit:
                return
            if index == 1 and self.gate is not None:
                await self.wait(self.gate)
            elif index:
                await asyncio.sleep(self.piece_delay)
            piece = pcm[start : start + size]
            stream.sent += len(piece)
            yield piece
        stream.done = True

    def half(self, text: str, rate: int) -> int:
        """About half of the stream's pieces (at least one): where DISCONNECT cuts it."""
        total = len(self.audio(text, rate))
        return max(1, -(-total // self._size(total)) // 2)

    async def wait(self, event: threading.Event, limit: float = 30.0) -> None:
        deadline = time.monotonic() + limit
        while not event.is_set() and not self.closing and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def stall(self, request: Request, limit: float = 30.0) -> None:
        """Hold the request unanswered until the client gives up (or the server closes)."""
        deadline = time.monotonic() + limit
        while not self.closing and time.monotonic() < deadline and not await request.is_disconnected():
            await asyncio.sleep(0.02)


class AudioResponse(Response):
    """Raw PCM streamed by hand, so that a fault can cut or spoil the body mid-way."""

    def __init__(self, fake: FakeTTS, text: str, rate: int, fault: Fault, media_type: str) -> None:
        super().__init__(media_type=media_type)
        self.fake, self.text, self.rate, self.fault = fake, text, rate, fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fault is Fault.SLOW_FIRST_BYTE:
            await asyncio.sleep(self.fake.faults.delay)
        headers = [(b"content-type", self.media_type.encode())]  # type: ignore[union-attr]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        limit = self.fake.half(self.text, self.rate) if self.fault is Fault.DISCONNECT else None
        async for piece in self.fake.play(self.text, self.rate, limit=limit):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if self.fault is Fault.DISCONNECT:
            return  # The body never completes: uvicorn drops the connection.
        if self.fault is Fault.MALFORMED:  # Whole audio, then an odd tail: no longer whole samples.
            await send({"type": "http.response.body", "body": GARBAGE, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


# The ElevenLabs stand-in itself.

VOICE = "JBFqnCBsd6RMkjVDRZzb"


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"detail": {"status": code, "message": message}}, status, headers=headers)


@dataclass
class FakeElevenLabs(FakeTTS):
    voice: str = VOICE

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("xi-api-key") != self.api_key:
            return _error(401, "invalid_api_key", "Invalid API key")
        return None

    async def stream(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(
            {
                "voice": request.path_params["voice_id"],
                "query": dict(request.query_params),
                "key": request.headers.get("xi-api-key"),
                "body": body,
            }
        )
        fault = self.faults.take()
        if (denied := self._auth(request)) is not None:
            return denied
        if self.fail_status is not None:
            return _error(self.fail_status, "injected", "injected failure")
        if fault is Fault.STALL:
            await self.stall(request)
            return Response(status_code=504)
        if fault is Fault.HTTP_500:
            return _error(500, "internal_error", "injected server error")
        if fault is Fault.HTTP_429:
            retry = {"Retry-After": str(self.faults.retry_after)}
            return _error(429, "too_many_concurrent_requests", "slow down", retry)
        if request.path_params["voice_id"] != self.voice:
            return _error(404, "voice_not_found", "A voice with that voice_id was not found")
        fmt = request.query_params.get("output_format", "mp3_44100_128")
        if not fmt.startswith("pcm_") or not isinstance(body.get("text"), str):
            return _error(400, "invalid_request", "this stand-in speaks pcm_<rate> and needs text")
        return AudioResponse(self, body["text"], int(fmt[4:]), fault, "audio/pcm")

    async def get_voice(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        if request.path_params["voice_id"] != self.voice:
            return _error(404, "voice_not_found", "A voice with that voice_id was not found")
        return JSONResponse({"voice_id": self.voice, "name": "Stand-in"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/text-to-speech/{voice_id}/stream", self.stream, methods=["POST"]),
                Route("/v1/voices/{voice_id}", self.get_voice, methods=["GET"]),
            ]
        )
