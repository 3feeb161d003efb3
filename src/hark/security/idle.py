"""The idle timeout every WebSocket endpoint shares: a client that sends nothing for
``idle_timeout_s`` while nothing is sent to it either is closed by the guard."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

from starlette.types import Message, Receive

IDLE_KEY = "hark_idle"
"""Where the guard leaves the connection's IdleWatch in ``scope["state"]``."""


class IdleWatch:
    """Reads from an ASGI ``receive`` with a deadline that any activity (a message either way,
    see :meth:`touch`) pushes back. The read in flight is kept, never cancelled, across waits.
    While the application holds it (:func:`hold_idle`: say, a meeting being processed after
    ``stop``, with nothing to send until ``final``) the socket is not idle."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.last = time.monotonic()
        self.holds = 0
        self._pending: asyncio.Task[Message] | None = None

    def touch(self) -> None:
        self.last = time.monotonic()

    async def receive(self, receive: Receive) -> Message | None:
        """The next message, or None once ``timeout_s`` passed without activity."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(receive())
        while True:
            remaining = self.last + self.timeout_s - time.monotonic()
            if remaining <= 0 and self.holds:
                self.touch()
                continue
            if remaining <= 0:
                return None
            done, _ = await asyncio.wait({self._pending}, timeout=remaining)
            if done:
                task, self._pending = self._pending, None
                self.touch()
                return task.result()

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


@contextlib.contextmanager
def hold_idle(scope: MutableMapping[str, Any]) -> Iterator[None]:
    """While inside, the guard's idle timeout does not close this WebSocket (no-op without the
    guard in front)."""
    watch = (scope.get("state") or {}).get(IDLE_KEY)
    if not isinstance(watch, IdleWatch):
        yield
        return
    watch.holds += 1
    try:
        yield
    finally:
        watch.holds -= 1
        watch.touch()
