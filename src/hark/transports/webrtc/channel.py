"""The ``oai-events`` data channel, and any sideband WebSockets watching the call, dressed as the
WebSocket the Realtime session reads and writes: the same session, codec and outbox serve a
call as serve a socket (no second protocol implementation).

Every event the server sends goes to the data channel and to each sideband socket; every
event either of them sends reaches the session. ``close()`` (idle, drain, a session that keeps
failing) lets the session say why (``on_closing``, where a WebSocket has its close frame), then
hangs the call up; at the end of the call ``close_channel()`` closes the channel after what was
sent on it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCDataChannel
from starlette.websockets import WebSocket

log = logging.getLogger("hark.webrtc")

CHANNEL_LABEL = "oai-events"
MAX_CHANNEL_BUFFER = 256 * 1024
"""Bytes queued in SCTP for a peer before the writer waits (the outbox then bounds the rest)."""
MAX_INBOX = 256
"""Client events waiting for the session; past it the call is closed (a flood, not a client)."""
DISCONNECT: dict[str, Any] = {"type": "websocket.disconnect", "code": 1000}


class ChannelSocket:
    def __init__(self, on_close: Callable[[str], None]) -> None:
        self.query_params: dict[str, str] = {}
        self.headers: dict[str, str] = {}
        self._on_close = on_close
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_INBOX)
        self._channel: RTCDataChannel | None = None
        self._open = asyncio.Event()
        self.closed = asyncio.Event()
        self.sidebands: set[WebSocket] = set()
        self.received = 0
        self.on_closing: Callable[[int, str], Awaitable[None]] | None = None
        """What the session says before a close it asked for (a WebSocket's close frame)."""

    # -- the data channel -----------------------------------------------------------------

    def attach(self, channel: RTCDataChannel) -> None:
        """The peer's ``oai-events`` channel (other channels are ignored)."""
        if channel.label != CHANNEL_LABEL or self._channel is not None:
            return
        self._channel = channel
        channel.on("message", self.deliver)
        channel.on("close", lambda: self.hang_up("data channel closed"))
        if channel.readyState == "open":
            self._open.set()
        else:
            channel.on("open", self._open.set)

    @property
    def opened(self) -> bool:
        """The peer's ``oai-events`` channel is open (events written now reach it)."""
        return self._open.is_set() and self._channel is not None and self._channel.readyState == "open"

    def deliver(self, message: str | bytes) -> None:
        """A client event from the channel or a sideband socket."""
        if self.closed.is_set():
            return
        self.received += 1
        item = (
            {"type": "websocket.receive", "text": message}
            if isinstance(message, str)
            else {
                "type": "websocket.receive",
                "text": message.decode("utf-8", "replace"),
            }
        )
        try:
            self._inbox.put_nowait(item)
        except asyncio.QueueFull:
            log.info("closing a call that floods its data channel")
            self.hang_up("too many events")

    # -- what the session calls (starlette's WebSocket, in part) --------------------------

    async def receive(self) -> dict[str, Any]:
        if self.closed.is_set() and self._inbox.empty():
            return DISCONNECT
        getting = asyncio.ensure_future(self._inbox.get())
        closing = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({getting, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not getting.done():
                getting.cancel()
        return getting.result() if getting.done() and not getting.cancelled() else DISCONNECT

    async def send_text(self, text: str) -> None:
        channel = self._channel
        if not self._open.is_set():
            opened = asyncio.ensure_future(self._open.wait())
            closing = asyncio.ensure_future(self.closed.wait())
            await asyncio.wait({opened, closing}, return_when=asyncio.FIRST_COMPLETED)
            opened.cancel()
            closing.cancel()
            channel = self._channel
        if self.closed.is_set():
            raise RuntimeError("the call has ended")
        if channel is not None and channel.readyState == "open":
            # Polled: aiortc's channel offers no "buffer low" wait that fires reliably.
            while channel.bufferedAmount > MAX_CHANNEL_BUFFER and not self.closed.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            channel.send(text)
        for socket in list(self.sidebands):
            try:
                await socket.send_text(text)
            except Exception:  # a sideband that went away stops watching; the call goes on
                self.sidebands.discard(socket)

    async def send_bytes(self, data: bytes) -> None:
        """Reply audio goes on the track, never here."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The session ends the call (drain, idle, …): ``on_closing`` has its say, then the
        hang-up, which happens even if that is cut short (a close bounded in time)."""
        try:
            if self.on_closing is not None and not self.closed.is_set():
                with contextlib.suppress(Exception):  # last words are best effort
                    await self.on_closing(code, reason)
        finally:
            self.hang_up(reason or str(code))

    async def close_channel(self, within_s: float) -> None:
        """Close the data channel as the peer sees it close: a stream reset, sent after every
        message already sent (aiortc's ``close``; the peer connection's own close would abort
        the association and could lose the last of them). Bounded: a peer gone never answers."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return
        closed = asyncio.Event()
        channel.on("close", closed.set)
        channel.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await closed.wait()

    def hang_up(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self._on_close(reason)
        for socket in list(self.sidebands):
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().create_task(socket.close(1000, "call ended"))
        self.sidebands.clear()
