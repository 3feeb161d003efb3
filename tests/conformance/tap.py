"""A loopback WebSocket relay between a client SDK and hark that keeps every event both ways.

Some SDKs swallow part of what the server sends (Pipecat logs some `error` events at debug level
and goes on), so the suite reads the wire rather than trusting each SDK's own report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.server import ServerConnection, serve

from tests.conformance.script import received
from tests.servers import free_port


@dataclass
class Wire:
    upstream: str
    """hark's origin, ws://host:port."""
    port: int = field(default_factory=free_port)
    from_server: list[dict[str, Any]] = field(default_factory=list)
    """Every server event (script.received: arrival time added, audio left out)."""
    from_client: list[dict[str, Any]] = field(default_factory=list)
    """Every client event but audio appends."""
    connections: int = 0

    @property
    def base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.from_server if e.get("type") == kind]

    async def relay(self, client: ServerConnection) -> None:
        self.connections += 1
        path = client.request.path if client.request is not None else "/"
        headers = (
            {
                k: v
                for k, v in client.request.headers.raw_items()
                if k.lower() in ("authorization", "openai-beta")
            }
            if client.request is not None
            else {}
        )
        async with websockets.connect(
            self.upstream + path, additional_headers=headers, max_size=None
        ) as server:

            async def pump(source: Any, sink: Any, log: list[dict[str, Any]]) -> None:
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for message in source:
                        if isinstance(message, str):
                            event = json.loads(message)
                            if event.get("type") != "input_audio_buffer.append":
                                log.append(received(event, time.monotonic()))
                        await sink.send(message)
                with contextlib.suppress(websockets.ConnectionClosed):
                    await sink.close()

            await asyncio.gather(
                pump(client, server, self.from_client), pump(server, client, self.from_server)
            )


@asynccontextmanager
async def tapped(hark_ws_url: str) -> AsyncIterator[Wire]:
    """A relay to the hark behind ``hark_ws_url``; point the client at ``wire.base`` + hark's path."""
    parts = urlsplit(hark_ws_url)
    wire = Wire(upstream=f"{parts.scheme}://{parts.netloc}")
    async with serve(wire.relay, "127.0.0.1", wire.port, max_size=None):
        yield wire
