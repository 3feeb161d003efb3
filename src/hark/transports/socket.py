"""The skeleton every WebSocket endpoint shares (realtime, meetings, TTS sessions): one reader
handing each message to the endpoint, one writer draining the bounded ``Outbox``, and one way
to end: the reader stops (client gone), a watcher returns (idle, …), or the client stopped
reading (outbox overflow → close 1008 "client too slow")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from hark.security import CLOSE_SLOW_CONSUMER
from hark.transports.outbox import Outbox

log = logging.getLogger("hark.transports")

Message = Mapping[str, Any]
"""A starlette websocket.receive message: ``text`` or ``bytes``."""


class SocketLink:
    def __init__(self, websocket: WebSocket, outbox: Outbox) -> None:
        self.ws = websocket
        self.outbox = outbox
        self.writing = False

    async def serve(
        self,
        on_message: Callable[[Message], Awaitable[None]],
        *watchers: Awaitable[Any],
        on_watcher: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        """Read until the client leaves, a watcher returns (``on_watcher(index)`` then runs) or
        the outbox overflows. Returns with reading and watching stopped and the writer still
        running (``stop_writing`` ends it)."""
        reader = asyncio.create_task(self._read(on_message))
        overflow = asyncio.create_task(self.outbox.overflow.wait())
        watching = [asyncio.ensure_future(w) for w in watchers]
        try:
            done, _ = await asyncio.wait({reader, overflow, *watching}, return_when=asyncio.FIRST_COMPLETED)
            if overflow in done:
                log.info("closing a session whose client is not reading")
                self.stop_writing()
                await self.close(CLOSE_SLOW_CONSUMER, "client too slow", within_s=1.0)
            else:
                for index, watcher in enumerate(watching):
                    if watcher in done and on_watcher is not None:
                        await on_watcher(index)
        finally:
            tasks = [reader, overflow, *watching]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def start_writing(self) -> None:
        self._writer = asyncio.create_task(self._write())

    def stop_writing(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.cancel()

    async def stopped_writing(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _read(self, on_message: Callable[[Message], Awaitable[None]]) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            await on_message(message)

    async def _write(self) -> None:
        while True:
            message = await self.outbox.get()
            self.writing = True
            try:
                if isinstance(message, str):
                    await self.ws.send_text(message)
                else:
                    await self.ws.send_bytes(message)
            except (WebSocketDisconnect, RuntimeError):
                return
            finally:
                self.writing = False

    async def flushed(self, deadline: float | None = None) -> None:
        """Wait until everything queued is written (or ``deadline``, monotonic, passes)."""
        while (self.outbox.pending or self.writing) and (deadline is None or time.monotonic() < deadline):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    async def close(self, code: int, reason: str, *, within_s: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await close_quietly(self.ws, code, reason)


async def close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close(code=code, reason=reason)
