"""What the loopback stand-ins share: the knobs every provider's server has (its key, injected
failures, a way to let go on shutdown), and the plumbing of the TTS stand-ins (deterministic audio,
paced in odd-sized pieces) and the LLM stand-ins (a scripted reply as server-sent events). Bodies
are written by hand, so that a fault can cut or spoil them mid-way."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from tests.contract.faults import Fault, FaultPlan
from tests.servers import ThreadedServer

ErrorFactory = Callable[[int, dict[str, str]], Response]
"""The provider's error answer for a status, with these headers."""


@dataclass
class FakeProvider:
    """Knobs shared by every HTTP stand-in. Tests set them, never patch hark."""

    api_key: str = "test-key"
    fail_status: int | None = None
    """Answer every request with this HTTP status (the provider's error shape)."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    closing: bool = False
    """Set when the server shuts down, so a stalled handler lets go."""

    async def stall(self, request: Request, limit: float = 30.0) -> None:
        """Hold the request unanswered until the client gives up (or the server closes)."""
        deadline = time.monotonic() + limit
        while not self.closing and time.monotonic() < deadline and not await request.is_disconnected():
            await asyncio.sleep(0.02)

    async def refuse(self, request: Request, fault: Fault, error: ErrorFactory) -> Response | None:
        """The answer for a failing request (``fail_status``, STALL, HTTP_500, HTTP_429), or None
        when it is to be served."""
        if self.fail_status is not None:
            return error(self.fail_status, {})
        if fault is Fault.STALL:
            await self.stall(request)
            return Response(status_code=504)
        if fault is Fault.HTTP_500:
            return error(500, {})
        if fault is Fault.HTTP_429:
            return error(429, {"Retry-After": f"{self.faults.retry_after:g}"})
        return None


class App(Protocol):
    closing: bool

    def app(self) -> Starlette: ...


FakeT = TypeVar("FakeT", bound=App)


@contextmanager
def serving(fake: FakeT) -> Iterator[tuple[FakeT, ThreadedServer]]:
    """``fake`` served on a loopback port in a thread, for a module-scoped ``server`` fixture."""
    with ThreadedServer(fake.app()) as server:
        try:
            yield fake, server
        finally:
            fake.closing = True


# --- OpenAI's error shape (the speech and transcription stand-ins) ----------------------------------


def openai_error(
    status: int, headers: dict[str, str], kind: str = "", message: str = "injected failure"
) -> Response:
    """OpenAI's error shape (shared by the speech and transcription stand-ins)."""
    kind = kind or {429: "rate_limit_error"}.get(status, "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "code": None}}, status, headers=headers)


def openai_denied(request: Request, api_key: str) -> Response | None:
    """OpenAI's answer to a missing or wrong bearer token; None when it is the right one."""
    if request.headers.get("authorization") != f"Bearer {api_key}":
        return openai_error(401, {}, "invalid_request_error", "Incorrect API key provided")
    return None


# --- TTS -----------------------------------------------------------------------------------------

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
class FakeTTS(FakeProvider):
    """Knobs shared by every TTS stand-in."""

    ms_per_char: int = 10
    """Audio length: this many milliseconds per character of text."""
    pieces: int = 5
    """The audio goes out in about this many pieces, each an odd number of bytes."""
    piece_delay: float = 0.01
    gate: threading.Event | None = None
    """When set up, the stream holds after its first piece until the event is set."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    generation: int = 0
    """Bumped by reset(): a request from an earlier test that the server is still answering (one
    its client gave up on, say) must not add its stream to the next test's record."""

    def reset(self) -> None:
        fresh = type(self)()
        for name in ("ms_per_char", "pieces", "piece_delay", "gate", "fail_status", "faults"):
            setattr(self, name, getattr(fresh, name))
        self.requests.clear()
        self.streams.clear()
        self.generation += 1

    @property
    def last(self) -> Stream:
        return self.streams[-1]

    def audio(self, text: str, rate: int) -> bytes:
        return tone(len(text) * rate * self.ms_per_char // 1000, rate)

    def _size(self, total: int) -> int:
        return max(1, total // self.pieces) | 1

    async def play(
        self, text: str, rate: int, *, limit: int | None = None, generation: int | None = None
    ) -> AsyncIterator[bytes]:
        """The audio for ``text`` in odd-sized, paced pieces; ``limit`` stops after that many.
        ``generation``: the fake's generation when the request arrived (recorded only if current)."""
        stream = Stream(text)
        if generation is None or generation == self.generation:
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


class AudioResponse(Response):
    """Raw PCM streamed by hand, so that a fault can cut or spoil the body mid-way."""

    def __init__(self, fake: FakeTTS, text: str, rate: int, fault: Fault, media_type: str) -> None:
        super().__init__(media_type=media_type)
        self.fake, self.text, self.rate, self.fault = fake, text, rate, fault
        self.generation = fake.generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fault is Fault.SLOW_FIRST_BYTE:
            await asyncio.sleep(self.fake.faults.delay)
        headers = [(b"content-type", self.media_type.encode())]  # type: ignore[union-attr]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        limit = self.fake.half(self.text, self.rate) if self.fault is Fault.DISCONNECT else None
        async for piece in self.fake.play(self.text, self.rate, limit=limit, generation=self.generation):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if self.fault is Fault.DISCONNECT:
            return  # The body never completes: uvicorn drops the connection.
        if self.fault is Fault.MALFORMED:  # Whole audio, then an odd tail: no longer whole samples.
            await send({"type": "http.response.body", "body": GARBAGE, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


# --- LLM -----------------------------------------------------------------------------------------

REPLY = "Paris is sunny and mild today. You will not need an umbrella."


@dataclass
class FakeLLM(FakeProvider):
    """Knobs shared by every LLM stand-in."""

    reply: str = REPLY
    """Streamed a word at a time."""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Calls (name, arguments) the reply makes after its text."""
    token_delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        fresh = type(self)()
        for name in ("reply", "tool_calls", "token_delay", "fail_status", "faults"):
            setattr(self, name, getattr(fresh, name))
        self.requests.clear()

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    def words(self) -> list[str]:
        words = self.reply.split(" ") if self.reply else []
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    async def record(self, request: Request) -> Any:
        body = await request.json()
        self.requests.append(
            {
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return body


class SSEResponse(Response):
    """Server-sent events written by hand: DISCONNECT drops the connection halfway, MALFORMED
    swaps the middle frame for ``garbage``, SLOW_FIRST_BYTE holds the headers back."""

    def __init__(self, fake: FakeLLM, frames: list[bytes], fault: Fault, garbage: bytes) -> None:
        super().__init__(media_type="text/event-stream")
        self.fake, self.frames, self.fault, self.garbage = fake, frames, fault, garbage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fault is Fault.SLOW_FIRST_BYTE:
            await asyncio.sleep(self.fake.faults.delay)
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        cut = len(self.frames) // 2
        for index, frame in enumerate(self.frames):
            if index == cut and self.fault is Fault.DISCONNECT:
                return  # The body never completes: uvicorn drops the connection.
            if index == cut and self.fault is Fault.MALFORMED:
                await send({"type": "http.response.body", "body": self.garbage, "more_body": True})
                break
            if index and self.fake.token_delay:
                await asyncio.sleep(self.fake.token_delay)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
