"""A loopback Cartesia: the ``/tts/websocket`` API, in a thread with its own event loop."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.contract.faults import Fault
from tests.contract.servers.common import FakeTTS

VOICE = "a0e99841-438c-4a64-b679-ae501e7d6091"


@dataclass
class FakeCartesia(FakeTTS):
    voice: str = VOICE
    handshakes: list[dict[str, Any]] = field(default_factory=list)
    _faults_by_connection: dict[int, Fault] = field(default_factory=dict)

    def reset(self) -> None:
        super().reset()
        self.handshakes.clear()

    def _reject(self, connection: ServerConnection, status: int, message: str, **headers: str) -> Response:
        response = connection.respond(status, json.dumps({"error": message}) + "\n")
        for name, value in headers.items():
            response.headers[name.replace("_", "-")] = value
        return response

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        self.handshakes.append(
            {"path": url.path, "query": query, "auth": request.headers.get("Authorization")}
        )
        fault = self.faults.take()
        keys = {request.headers.get("Authorization"), *(f"Bearer {k}" for k in query.get("api_key", []))}
        if url.path != "/tts/websocket":
            return self._reject(connection, 404, "not found")
        if f"Bearer {self.api_key}" not in keys:
            return self._reject(connection, 401, "Invalid API key")
        if not query.get("cartesia_version"):
            return self._reject(connection, 400, "Cartesia-Version is required")
        if fault is Fault.HTTP_500:
            return self._reject(connection, 500, "injected server error")
        if fault is Fault.HTTP_429:
            return self._reject(connection, 429, "rate limited", Retry_After=str(self.faults.retry_after))
        self._faults_by_connection[id(connection)] = fault
        return None

    async def handler(self, connection: ServerConnection) -> None:
        fault = self._faults_by_connection.pop(id(connection), Fault.NONE)
        try:
            async for raw in connection:
                request = json.loads(raw)
                self.requests.append(request)
                if not await self._answer(connection, request, fault):
                    return
        except ConnectionClosed:
            pass

    async def _answer(self, connection: ServerConnection, request: dict[str, Any], fault: Fault) -> bool:
        """Serve one generation request; False when the connection was dropped on purpose."""
        context = request.get("context_id")
        if fault is Fault.STALL:
            deadline = time.monotonic() + 30
            while not self.closing and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(connection.wait_closed(), 0.05)
                    return False
                except TimeoutError:
                    pass
            return False
        fmt = request.get("output_format", {})
        if request.get("voice") != {"mode": "id", "id": self.voice} or fmt.get("encoding") != "pcm_s16le":
            error = {"type": "error", "done": True, "status_code": 400, "context_id": context}
            await connection.send(json.dumps(error | {"error": "unknown voice or unsupported format"}))
            return True
        if self.fail_status is not None:
            error = {"type": "error", "done": True, "status_code": self.fail_status, "context_id": context}
            await connection.send(json.dumps(error | {"title": "Injected", "message": "injected failure"}))
            return True
        generation = self.generation
        if fault is Fault.SLOW_FIRST_BYTE:
            await asyncio.sleep(self.faults.delay)
        text, rate = request["transcript"], int(fmt["sample_rate"])
        limit = self.half(text, rate) if fault is Fault.DISCONNECT else None
        async for piece in self.play(text, rate, limit=limit, generation=generation):
            data = base64.b64encode(piece).decode()
            chunk = {"type": "chunk", "data": data, "done": False, "status_code": 206, "context_id": context}
            await connection.send(json.dumps(chunk | {"step_time": 12.5}))
        if fault is Fault.DISCONNECT:
            connection.transport.abort()  # No close frame: the peer simply vanishes.
            return False
        if fault is Fault.MALFORMED:
            await connection.send("<html>bad gateway</html>")
            return True
        await connection.send(
            json.dumps({"type": "done", "done": True, "status_code": 206, "context_id": context})
        )
        return True


class WebSocketServer:
    """A websockets server for ``FakeCartesia``, in a thread of the test process."""

    def __init__(self, fake: FakeCartesia) -> None:
        self.fake = fake
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self.fake.handler, "127.0.0.1", 0, process_request=self.fake.process_request) as srv:
            self.port = next(iter(srv.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> WebSocketServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test WebSocket server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.closing = True
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
