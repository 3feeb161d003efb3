"""The worker processes behind a pool: started, handed calls, replaced when they die or hang.

It knows nothing of the line of waiting requests: the pool hears (``on_idle``) when a worker
can take work and (``on_reply``) how each call ended. Every state change happens on the event
loop; a worker's death is seen through its process ``sentinel``, watched with ``loop.add_reader``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from typing import Any

from hark.errors import EngineError
from hark.workers.courier import Broken, Courier, Delivery
from hark.workers.process import Pending, WorkerProcess, exit_status
from hark.workers.proto import Chunk, Done, EngineInfo, Failed, Failure, Ready

log = logging.getLogger("hark.workers")

ENGINE = "workers"
EXIT_WAIT_S = 2.0
"""How long a child gets to close its engines after its pipe closes, before SIGKILL."""
RESTART_BACKOFF_S = (0.5, 30.0)
"""First and longest delay between failed restarts (a missing model must not spin the CPU)."""


class Supervisor:
    """``args``: what every ``child.main`` gets after its pipe. ``supervising``: dead workers are
    replaced (the pool sets it from start-up until shutdown stops the restarts)."""

    def __init__(
        self,
        ctx: SpawnContext,
        args: tuple[Any, ...],
        *,
        start_timeout_s: float,
        request_timeout_s: float,
        on_idle: Callable[[], None],
        on_reply: Callable[[Pending, Done | Failure], None],
    ) -> None:
        self._ctx = ctx
        self._args = args
        self.start_timeout_s = start_timeout_s
        self.request_timeout_s = request_timeout_s
        self._on_idle = on_idle
        self._on_reply = on_reply
        self.workers: list[WorkerProcess] = []
        self.infos: list[EngineInfo] = []
        self.restarts = 0
        """Workers replaced since start (crashes and hangs)."""
        self.supervising = False
        self.changed = asyncio.Event()
        """Set whenever a request ends or a worker exits; shutdown waits on it."""
        self._couriers: list[Courier] = []
        self._replacing: set[asyncio.Task[None]] = set()

    @property
    def size(self) -> int:
        """Live, warmed workers (idle or busy)."""
        return sum(1 for w in self.workers if w.state in ("idle", "busy"))

    @property
    def in_flight(self) -> int:
        return sum(1 for w in self.workers if w.state == "busy")

    def engine_name(self, pending: Pending | None) -> str:
        return self.infos[pending.engine].name if pending is not None and self.infos else ENGINE

    # -- start-up ---------------------------------------------------------------------------

    async def start(self, processes: int) -> None:
        """Spawn ``processes`` workers and wait until each has built and warmed its engines;
        the first failure's EngineError when any cannot (the caller closes the rest)."""
        # The children load their models in parallel.
        results = await asyncio.gather(*(self.start_one() for _ in range(processes)), return_exceptions=True)
        infos = [r.warmed.result() for r in results if isinstance(r, WorkerProcess)]
        if len(infos) < processes:
            raise next(r for r in results if isinstance(r, BaseException))
        self.infos = infos[0]

    async def start_one(self) -> WorkerProcess:
        """Spawn a worker and wait for its warm-up. EngineError, the worker retired, on failure."""
        try:
            worker = WorkerProcess.spawn(self._ctx, self._args, self._on_message, self._on_exit)
        except OSError as exc:  # out of processes or file descriptors
            raise EngineError(f"cannot start a worker process: {exc}", engine=ENGINE) from exc
        self._couriers = [c for c in self._couriers if c.is_alive()] + [worker.courier]
        self.workers.append(worker)
        try:
            async with asyncio.timeout(self.start_timeout_s):
                await worker.warmed
        except TimeoutError:
            error = EngineError(f"worker did not warm up within {self.start_timeout_s:g} s", engine=ENGINE)
            self.retire(worker, error)
            raise error from None
        except EngineError as error:  # it reported a failure, or died
            self.retire(worker, error)
            raise
        return worker

    # -- calls ------------------------------------------------------------------------------

    def assign(self, worker: WorkerProcess, pending: Pending) -> None:
        worker.state = "busy"
        worker.current = pending
        pending.started = time.monotonic()
        pending.timer = asyncio.get_running_loop().call_later(
            self.request_timeout_s, self._on_timeout, worker, pending
        )
        worker.courier.send(pending.call())

    def _on_message(self, worker: WorkerProcess, message: Delivery) -> None:
        if worker.state == "retired":
            return  # late words from a worker already given up on
        match message:
            case Ready(infos, warm_s):
                worker.state, worker.served = "idle", True
                log.info("worker warmed", extra={"pid": worker.pid, "warm_s": round(warm_s, 2)})
                if not worker.warmed.done():
                    worker.warmed.set_result(infos)
                self._on_idle()
            case Failed(reason):
                # The child exits by itself; whoever awaits its start-up reports the reason.
                if not worker.warmed.done():
                    worker.warmed.set_exception(
                        EngineError(f"worker start-up failed: {reason}", engine=ENGINE)
                    )
            case Broken(reason):
                self.retire(
                    worker, EngineError(f"worker sent an unreadable reply ({reason})", retryable=True)
                )
            case Chunk(call_id, data):  # a piece of a streaming call; the worker is still on it
                pending = worker.current
                if pending is None or pending.id != call_id or pending.future.done():
                    return
                if pending.chunks is not None:
                    pending.chunks.put_nowait(data)
            case Done() | Failure():
                pending = worker.current
                if pending is not None and pending.id == message.id:
                    self._release(worker, pending)
                    self._on_reply(pending, message)

    def _release(self, worker: WorkerProcess, pending: Pending) -> None:
        self.changed.set()
        worker.current = None
        if worker.state == "busy":
            worker.state = "idle"
        if pending.timer is not None:
            pending.timer.cancel()

    # -- supervision ------------------------------------------------------------------------

    def _on_timeout(self, worker: WorkerProcess, pending: Pending) -> None:
        if worker.current is not pending:
            return
        log.warning(
            "worker hung; killing it",
            extra={"pid": worker.pid, "request": pending.id, "timeout_s": self.request_timeout_s},
        )
        self.retire(
            worker,
            EngineError(
                f"worker process {worker.pid} did not finish {pending.request.method} within "
                f"{self.request_timeout_s:g} s; it was killed and is being restarted",
                retryable=True,
                engine=self.engine_name(pending),
            ),
        )

    def retire(self, worker: WorkerProcess, error: EngineError) -> None:
        """Take a worker out of service, fail its call, SIGKILL it; its sentinel reaps it."""
        if worker.state == "retired":
            return
        worker.state = "retired"
        pending = worker.current
        if pending is not None:
            self._release(worker, pending)
            if not pending.future.done():
                pending.future.set_exception(error)
        if not worker.warmed.done():
            worker.warmed.set_exception(error)
        worker.courier.stop()
        worker.process.kill()  # a hung engine may not answer anything gentler

    def _on_exit(self, worker: WorkerProcess) -> None:
        """The child's sentinel became readable: it has exited. Reap it, fail its call, and (if
        it had been serving) start a replacement."""
        code = worker.reap()
        self.workers.remove(worker)
        self.changed.set()
        if worker.state != "retired":
            pending = worker.current
            doing = f"running {pending.request.method} (request {pending.id})" if pending else worker.state
            error = EngineError(
                f"worker process died ({exit_status(code)}) while {doing}",
                retryable=True,
                engine=self.engine_name(pending),
            )
            if worker.served and self.supervising:  # at shutdown, exiting is the point
                log.warning("worker died", extra={"pid": worker.pid, "exit_code": code, "while": doing})
            self.retire(worker, error)
        if worker.served and self.supervising:
            task = asyncio.get_running_loop().create_task(self._replace())
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)

    async def _replace(self) -> None:
        """Start a worker in place of a dead one; keep trying, backing off, while it fails."""
        delay, longest = RESTART_BACKOFF_S
        while self.supervising:
            started = time.monotonic()
            try:
                worker = await self.start_one()
            except EngineError as exc:
                log.error("worker restart failed", extra={"error": str(exc), "retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(longest, delay * 2)
                continue
            self.restarts += 1
            seconds = round(time.monotonic() - started, 2)
            log.info("worker restarted", extra={"pid": worker.pid, "seconds": seconds})
            return

    # -- shutdown ---------------------------------------------------------------------------

    async def stop_restarts(self) -> None:
        self.supervising = False
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*self._replacing, return_exceptions=True)

    async def close(self, error: EngineError) -> None:
        """End every worker; a call still running fails with ``error``."""
        # A worker mid-request or mid-load would not read an EOF soon: SIGKILL it. An idle one
        # gets its pipe closed: it sees EOF, closes its engines and exits.
        for worker in list(self.workers):
            if not worker.warmed.done():
                worker.warmed.cancel()  # nobody awaits it any more
            if worker.state in ("starting", "busy"):
                self.retire(worker, error)
            else:
                worker.courier.stop()
        # Give them a moment, then SIGKILL; _on_exit reaps each (join), so no zombies remain.
        await self.wait_until(lambda: not self.workers, EXIT_WAIT_S)
        for worker in self.workers:
            worker.process.kill()
        await self.wait_until(lambda: not self.workers, EXIT_WAIT_S)
        for worker in list(self.workers):  # not expected: a process the kernel would not end
            await worker.abandon(EXIT_WAIT_S)
            self.workers.remove(worker)
        # The couriers end when their pipes close.
        couriers, self._couriers = self._couriers, []
        await asyncio.to_thread(_join_all, couriers, EXIT_WAIT_S)

    async def wait_until(self, done: Callable[[], bool], seconds: float) -> None:
        """Wait until ``done()`` (re-checked whenever a request or a worker ends), or ``seconds``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not done():
                    self.changed.clear()
                    await self.changed.wait()


def _join_all(threads: list[Courier], seconds: float) -> None:
    for thread in threads:
        thread.join(seconds)
