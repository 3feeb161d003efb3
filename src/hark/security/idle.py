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
    see :meth:`touch`) pushes back. While the application holds it (:func:`hold_idle`: say, a
    meeting being processed after ``stop``, with nothing to send until ``final``) the socket is
    not idle.

    The read runs in the caller's task: one timer per connection, moved only when it fires
    (activity just records the time), cancels the read once the deadline has really passed.
    Wrapping every read in a task and ``asyncio.wait`` cost two extra event-loop passes per
    frame and ~5 % of the server's CPU (docs/benchmarks.md)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.last = time.monotonic()
        self.holds = 0
        self._reader: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._fired = False

    def touch(self) -> None:
        self.last = time.monotonic()

    def _expired(self) -> bool:
        """The deadline has passed; a hold pushes it back instead."""
        if time.monotonic() < self.last + self.timeout_s:
            return False
        if self.holds:
            self.touch()
            return False
        return True

    async def receive(self, receive: Receive) -> Message | None:
        """The next message, or None once ``timeout_s`` passed without activity."""
        if self._expired():
            return None
        task = asyncio.current_task()
        assert task is not None, "IdleWatch.receive runs inside a task"
        self._reader = task
        if self._timer is None:
            self._arm()
        try:
            message = await receive()
        except asyncio.CancelledError:
            if not self._fired:
                raise
            self._fired = False
            if task.uncancel() > 0:
                raise  # cancelled by someone else as well
            return None
        finally:
            self._reader = None
        if self._fired:  # the cancel came too late: the read had already finished
            self._fired = False
            task.uncancel()
        self.touch()
        return message

    def _arm(self) -> None:
        delay = self.last + self.timeout_s - time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._reader is None:
            return  # not reading: the next receive checks the deadline and re-arms
        if not self._expired():
            self._arm()
            return
        self._fired = True
        self._reader.cancel()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


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
