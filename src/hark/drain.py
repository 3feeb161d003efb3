"""Graceful drain on SIGTERM: refuse new sessions, let turns in progress finish, close the rest
with 1001, then let the server exit. (uvicorn alone would close every WebSocket at once with
1012, cutting replies mid-sentence.)"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

import uvicorn

log = logging.getLogger("hark.drain")

FLUSH_GRACE_S = 1.0
"""After the drain deadline, how long a session may take to flush its last reply (the sessions'
``link.flushed(deadline + 1.0)``)."""
CONNECTIONS_GRACE_S = 5
"""After the drain, how long uvicorn gives the connections left before cutting them."""


def stop_within_s(drain_timeout_s: float) -> float:
    """The longest a SIGTERM'd ``hark serve`` keeps its sessions open: the drain, the last flush,
    then uvicorn's grace. A supervisor should wait at least this before SIGKILL (systemd's
    ``TimeoutStopSec``; Kubernetes' ``terminationGracePeriodSeconds`` minus the preStop hook)."""
    return drain_timeout_s + FLUSH_GRACE_S + CONNECTIONS_GRACE_S


class Drainable(Protocol):
    async def drain(self, deadline: float) -> None:
        """Finish the turn in progress (until ``deadline``, monotonic) and close with 1001."""
        ...


class Drainer:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.draining = False
        self.sessions: set[Drainable] = set()

    def register(self, session: Drainable) -> None:
        self.sessions.add(session)

    def unregister(self, session: Drainable) -> None:
        self.sessions.discard(session)

    async def drain(self) -> None:
        # 1. Refuse new sessions; /ready answers 503 so load balancers stop sending traffic.
        self.draining = True
        started = time.monotonic()
        deadline = started + self.timeout_s
        sessions = list(self.sessions)
        log.info("draining", extra={"sessions": len(sessions), "timeout_s": self.timeout_s})
        # 2. Each session finishes its turn in progress, then closes with 1001.
        await asyncio.gather(*(s.drain(deadline) for s in sessions), return_exceptions=True)
        log.info(
            "drained", extra={"sessions": len(sessions), "seconds": round(time.monotonic() - started, 2)}
        )


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM drains the app before the usual shutdown."""

    def __init__(
        self, config: uvicorn.Config, drainer: Drainer, *, on_started: Callable[[], object] | None = None
    ) -> None:
        super().__init__(config)
        self.drainer = drainer
        self.on_started = on_started
        """Called once start-up (the app's lifespan included) is done, before the first request."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if not self.should_exit and self.on_started is not None:
            self.on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain_task is None and self._loop is not None:
            # Signal handlers run between bytecodes: hand the work to the loop.
            self._loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await self.drainer.drain()
        finally:
            self.should_exit = True
