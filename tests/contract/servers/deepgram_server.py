"""A loopback stand-in for Deepgram's live transcription WebSocket, in the test's event loop.

It does not recognise speech: it answers a scripted transcript, interim then final per segment,
in Deepgram's message shapes, and records every request (query, auth, audio bytes) so tests can
assert the audio arrived intact. Faults come from a ``FaultPlan``.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.contract.faults import Fault, FaultPlan

MODEL_UUID = "1abfe86b-e047-4eed-858a-35e5625b41ee"
MODEL_INFO = {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"}


@dataclass
class ListenRequest:
    query: dict[str, str]
    authorization: str | None
    fault: Fault
    audio: bytearray = field(default_factory=bytearray)
    frames: list[int] = field(default_factory=list)
    """Size of each binary frame received."""
    controls: list[dict[str, Any]] = field(default_factory=list)
    """JSON text messages received (CloseStream, KeepAlive...)."""
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Messages this server sent, in order."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.audio).hexdigest()

    @property
    def sample_rate(self) -> int:
        return int(self.query.get("sample_rate", "16000"))


def reply(status: int, body: dict[str, Any], **headers: str) -> Response:
    data = json.dumps(body).encode()
    fields = {"Content-Type": "application/json", "Content-Length": str(len(data)), "Connection": "close"}
    fields.update({name.replace("_", "-"): value for name, value in headers.items()})
    return Response(status, HTTPStatus(status).phrase, Headers(fields), data)


@dataclass
class FakeDeepgram:
    api_key: str = "dg-test-key"
    transcript: str = "Turn on the kitchen lights. And set a timer for ten minutes."
    segments: int = 2
    """The transcript is finalised in this many segments, each preceded by an interim result."""
    auth_status: int = 401
    """The status a wrong key gets (401 for a bad key, 403 for one without permission)."""
    malformed: str = "{this is not json"
    faults: FaultPlan = field(default_factory=FaultPlan)
    requests: list[ListenRequest] = field(default_factory=list)
    project_checks: list[str | None] = field(default_factory=list)
    port: int = 0
    _pending: dict[uuid.UUID, ListenRequest] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.faults.set(Fault.NONE)
        self.faults.requests = 0
        self.requests.clear()
        self.project_checks.clear()
        self.auth_status = 401
        self.transcript = FakeDeepgram.transcript
        self.segments = FakeDeepgram.segments
        self.malformed = FakeDeepgram.malformed

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeDeepgram]:
        async with serve(self._handle, "127.0.0.1", 0, process_request=self._process_request) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            yield self

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        auth = request.headers.get("Authorization")
        bad_key = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}
        if url.path == "/v1/projects":
            self.project_checks.append(auth)
            if auth != f"Token {self.api_key}":
                return reply(self.auth_status, bad_key, dg_error="Invalid credentials")
            return reply(200, {"projects": [{"project_id": str(uuid.uuid4()), "name": "hark tests"}]})
        if url.path != "/v1/listen":
            return reply(404, {"err_code": "NOT_FOUND", "err_msg": url.path})
        listen = ListenRequest(dict(parse_qsl(url.query)), auth, self.faults.take())
        self.requests.append(listen)
        if auth != f"Token {self.api_key}":
            return reply(self.auth_status, bad_key, dg_error="Invalid credentials")
        q = listen.query
        if q.get("encoding") != "linear16" or q.get("channels") != "1" or not q.get("sample_rate"):
            return reply(400, {"err_code": "Bad Request", "err_msg": f"bad audio params {q}"})
        if listen.fault is Fault.HTTP_500:
            return reply(500, {"err_code": "INTERNAL_SERVER_ERROR", "err_msg": "injected"})
        if listen.fault is Fault.HTTP_429:
            return reply(429, {"err_code": "TOO_MANY_REQUESTS"}, retry_after=str(self.faults.retry_after))
        self._pending[connection.id] = listen
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        listen = self._pending.pop(connection.id)
        answer = listen.fault is not Fault.STALL  # A stalled stream reads everything, answers nothing.
        first: asyncio.Task[None] | None = None
        try:
            async for message in connection:
                if isinstance(message, bytes):
                    listen.audio += message
                    listen.frames.append(len(message))
                    if first is None and answer:
                        # Answer while reading on, as Deepgram does: a slow answer never stops the
                        # reading, so a client that gives up is noticed at once.
                        first = asyncio.create_task(self._first(connection, listen))
                    continue
                control = json.loads(message)
                listen.controls.append(control)
                if control.get("type") == "CloseStream" and answer:
                    if first is not None:
                        await first
                    await self._flush(connection, listen)
                    return
        except ConnectionClosed:
            pass  # The client gave up (or a fault dropped it): nothing more to answer.
        finally:
            if first is not None:
                first.cancel()
                await asyncio.gather(first, return_exceptions=True)

    async def _send(
        self, connection: ServerConnection, listen: ListenRequest, message: dict[str, Any]
    ) -> None:
        listen.sent.append(message)
        await connection.send(json.dumps(message))

    async def _first(self, connection: ServerConnection, listen: ListenRequest) -> None:
        """The first interim result, and the faults that strike mid-stream after it."""
        if listen.fault is Fault.SLOW_FIRST_BYTE:
            await asyncio.sleep(self.faults.delay)
        await self._send(connection, listen, self._results(listen, 0, final=False))
        if listen.fault is Fault.MALFORMED:
            await connection.send(self.malformed)
        if listen.fault is Fault.DISCONNECT:
            connection.transport.abort()  # No close frame: a dropped connection.

    async def _flush(self, connection: ServerConnection, listen: ListenRequest) -> None:
        """After CloseStream: the remaining results, final per segment, then Metadata and close."""
        if listen.audio:
            for i in range(self.segments):
                if i > 0:
                    await self._send(connection, listen, self._results(listen, i, final=False))
                await self._send(connection, listen, self._results(listen, i, final=True))
        await self._send(connection, listen, self._metadata(listen))
        await connection.close()

    def _results(self, listen: ListenRequest, index: int, *, final: bool) -> dict[str, Any]:
        words = self.transcript.split()
        per = -(-len(words) // self.segments)
        segment = words[index * per : (index + 1) * per]
        if not final:
            segment = segment[: max(1, len(segment) // 2)]  # An interim hears part of the segment.
        span = len(listen.audio) / 2 / listen.sample_rate / self.segments
        start = index * span
        step = span / max(1, len(segment))
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(span, 3),
            "start": round(start, 3),
            "is_final": final,
            "speech_final": final and index == self.segments - 1,
            "from_finalize": False,
            "channel": {
                "alternatives": [
                    {
                        "transcript": " ".join(segment),
                        "confidence": 0.98,
                        "words": [
                            {
                                "word": word.strip(".,").lower(),
                                "start": round(start + n * step, 3),
                                "end": round(start + (n + 1) * step, 3),
                                "confidence": 0.98,
                                "punctuated_word": word,
                            }
                            for n, word in enumerate(segment)
                        ],
                    }
                ]
            },
            "metadata": {
                "request_id": str(uuid.uuid4()),
                "model_info": MODEL_INFO,
                "model_uuid": MODEL_UUID,
            },
        }

    def _metadata(self, listen: ListenRequest) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": str(uuid.uuid4()),
            "sha256": listen.sha256,
            "created": datetime.datetime.now(datetime.UTC).isoformat(),
            "duration": len(listen.audio) / 2 / listen.sample_rate,
            "channels": 1,
            "models": [MODEL_UUID],
            "model_info": {MODEL_UUID: MODEL_INFO},
        }
