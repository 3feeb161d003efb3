"""One worker process as the pool sees it, and the call it is running."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any, Literal

from hark.priority import Budget, Work
from hark.workers import child
from hark.workers.courier import Courier, Delivery
from hark.workers.proto import Call, EngineInfo, Request


def available_cores() -> int:
    """CPU cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def default_processes() -> int:
    """One worker per CPU core."""
    return available_cores()


@dataclass(eq=False)
class Pending:
    """A request from the moment it is accepted until its future is resolved."""

    id: int
    engine: int
    """Index into the pool's ``stage_providers``."""
    request: Request
    future: asyncio.Future[Any]
    work: Work
    budget: Budget | None = None
    """The caller's time budget: it restarts when the request leaves the line."""
    started: float = 0.0
    timer: asyncio.TimerHandle | None = None
    chunks: asyncio.Queue[Any] | None = None
    """Where a streaming request's pieces go, before its reply (see ``WorkerPool.stream``)."""

    def call(self) -> Call:
        return Call(self.id, self.engine, self.request)


class WorkerProcess:
    """A spawned worker: its process, the courier thread on its pipe, and what it is doing."""

    def __init__(self, process: BaseProcess, loop: asyncio.AbstractEventLoop) -> None:
        self.process = process
        self.pid: int = process.pid or 0
        self.state: Literal["starting", "idle", "busy", "retired"] = "starting"
        self.current: Pending | None = None
        self.warmed: asyncio.Future[list[EngineInfo]] = loop.create_future()
        self.served = False
        """It warmed up and took requests: its death calls for a replacement."""
        self.courier: Courier

    @classmethod
    def spawn(
        cls,
        ctx: SpawnContext,
        args: tuple[Any, ...],
        on_message: Callable[[WorkerProcess, Delivery], None],
        on_exit: Callable[[WorkerProcess], None],
    ) -> WorkerProcess:
        """Start ``child.main(pipe, *args)``; ``on_exit`` runs on the loop once it has exited."""
        loop = asyncio.get_running_loop()
        parent_end, child_end = ctx.Pipe()
        process = ctx.Process(
            target=child.main,
            args=(child_end, *args),
            name="hark-worker",
            daemon=True,  # never outlive the parent, even when aclose was skipped
        )
        # Synchronous on purpose: spawn execs a fresh interpreter and writes it a few KB of
        # arguments (~15 ms); the model loading happens in the child, off this loop.
        try:
            process.start()
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()  # the child holds its own copy; ours would keep EOF from ever arriving
        worker = cls(process, loop)
        worker.courier = Courier(parent_end, loop, lambda message: on_message(worker, message))
        worker.courier.start()
        loop.add_reader(process.sentinel, on_exit, worker)
        return worker

    def reap(self) -> int | None:
        """After it exited: stop watching it, join it (no zombie) and its courier; its exit code."""
        asyncio.get_running_loop().remove_reader(self.process.sentinel)
        self.process.join()  # already exited: returns at once
        self.courier.stop()
        return self.process.exitcode

    async def abandon(self, seconds: float) -> None:
        """Stop watching a process the kernel would not end; join it for at most ``seconds``."""
        asyncio.get_running_loop().remove_reader(self.process.sentinel)
        await asyncio.to_thread(self.process.join, seconds)


def exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"exit code {code}, {signal.Signals(-code).name}"
    return f"exit code {code}"
