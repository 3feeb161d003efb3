"""A supervised pool of engine worker processes: the parent's side.

The parent holds no model. Each worker is a spawned process that built every pooled engine once
and warmed it (see ``hark.workers.child``); the pool hands it one request at a time, matched by
id, and replaces it when it dies or hangs. Requests beyond the workers wait in line by priority
(``hark.priority``, ``hark.work_queue``): a finished turn's transcript and the reply being
spoken first, speculative work next, partial transcripts last. Past ``queue_limit`` the least
urgent work is shed (:class:`~hark.errors.WorkShed`), unmarked requests are refused with
:class:`PoolBusy` (HTTP 503 + Retry-After upstream), and FINAL work still joins: late, not lost.

Threads and the loop: each worker's pipe is owned by a *courier* thread (the loop never blocks
on a pipe); every state change happens on the event loop, so the pool needs no locks. A worker's
death is seen through its process ``sentinel``, watched with ``loop.add_reader``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from statistics import fmean
from typing import Any, Literal

from hark.config import ProviderConfig, Settings
from hark.errors import EngineError, EngineSaturated, EngineUnavailable, WorkShed
from hark.priority import Budget, Priority, Work, current_budget, current_work, may_refuse
from hark.work_queue import WorkQueue
from hark.workers import child
from hark.workers.child import EngineInfo, Factory

log = logging.getLogger("hark.workers")

_END = object()
"""Marks the end of a streaming request's pieces."""

ENGINE = "workers"
DEFAULT_SERVICE_S = 1.0
"""Assumed seconds per request for Retry-After before any request has been timed."""
EXIT_WAIT_S = 2.0
"""How long a child gets to close its engines after its pipe closes, before SIGKILL."""
RESTART_BACKOFF_S = (0.5, 30.0)
"""First and longest delay between failed restarts (a missing model must not spin the CPU)."""


def available_cores() -> int:
    """CPU cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def default_processes() -> int:
    """One worker per CPU core."""
    return available_cores()


class PoolBusy(EngineSaturated):
    """Every worker is busy and ``queue_limit`` requests at least as urgent are already waiting.

    ``retry_after`` estimates, from recent service times, when the backlog will have drained."""

    retry_after: float

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, engine=ENGINE, retry_after=retry_after)


@dataclass(eq=False)
class _Request:
    id: int
    stage_index: int
    method: str
    payload: Any
    future: asyncio.Future[Any]
    work: Work
    budget: Budget | None = None
    """The caller's time budget: it restarts when the request leaves the line."""
    started: float = 0.0
    timer: asyncio.TimerHandle | None = None
    chunks: asyncio.Queue[Any] | None = None
    """Where a streaming request's pieces go, before its reply (see :meth:`WorkerPool.stream`)."""


class _Courier(threading.Thread):
    """Owns the parent's end of one worker's pipe.

    A pipe write blocks until the child reads (audio and PCM exceed the pipe buffer) and a read
    blocks until a whole pickled message has arrived, so a stopped or hung child would freeze
    the event loop. Only this thread waits; what it receives reaches the loop through
    ``call_soon_threadsafe``. The protocol is strictly turn by turn, so one thread does both."""

    def __init__(
        self, conn: Connection, loop: asyncio.AbstractEventLoop, deliver: Callable[[tuple[Any, ...]], None]
    ) -> None:
        super().__init__(name="hark-worker-courier", daemon=True)
        self._conn = conn
        self._loop = loop
        self._deliver = deliver
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()

    def send(self, job: tuple[Any, ...]) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        """Close the pipe once the current exchange ends (at once when idle): the child exits."""
        self._jobs.put(None)

    def run(self) -> None:
        try:
            self._post(self._conn.recv())  # "ready" or "failed"
            while (job := self._jobs.get()) is not None:
                self._conn.send(job)
                while (message := self._conn.recv())[1] == "chunk":  # a streamed piece: more follow
                    self._post(message)
                self._post(message)
        except (EOFError, OSError):
            pass  # the child is gone; its sentinel tells the pool
        except Exception as exc:  # an unreadable message: the pool retires the worker
            self._post(("broken", f"{type(exc).__name__}: {exc}"))
        finally:
            self._conn.close()

    def _post(self, message: tuple[Any, ...]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._deliver, message)


class _Worker:
    def __init__(self, process: BaseProcess, loop: asyncio.AbstractEventLoop) -> None:
        self.process = process
        self.pid: int = process.pid or 0
        self.state: Literal["starting", "idle", "busy", "retired"] = "starting"
        self.current: _Request | None = None
        self.warmed: asyncio.Future[list[EngineInfo]] = loop.create_future()
        self.served = False
        """It warmed up and took requests: its death calls for a replacement."""
        self.courier: _Courier


class WorkerPool:
    """Processes that each hold every engine in ``stage_providers``; requests run one per worker.

    ``stage_providers`` lists ``(stage, provider)`` pairs (``"stt"`` or ``"tts"``); a request
    names its engine by index in that list. ``factory`` builds an engine in the child
    (``hark.engines.registry.build``, or a test double); it must be a module-level function
    (it is pickled by reference). ``partial_stale_s``: a partial
    transcript that waited longer than this is dropped unrun (the next one supersedes it)."""

    def __init__(
        self,
        stage_providers: Sequence[tuple[str, ProviderConfig]],
        settings: Settings,
        *,
        processes: int,
        queue_limit: int,
        request_timeout_s: float,
        start_timeout_s: float = 120.0,
        partial_stale_s: float | None = None,
        factory: Factory,
    ) -> None:
        if processes < 1 or queue_limit < 0 or request_timeout_s <= 0 or start_timeout_s <= 0:
            raise ValueError("processes >= 1, queue_limit >= 0 and positive timeouts are required")
        if not stage_providers:
            raise ValueError("a worker pool needs at least one engine")
        try:
            pickle.dumps(factory)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise ValueError(f"factory must be a module-level function: {exc}") from exc
        self.stages = [stage for stage, _ in stage_providers]
        """Each engine's stage, in request-index order."""
        self.processes = processes
        self.queue_limit = queue_limit
        self.request_timeout_s = request_timeout_s
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        """Workers replaced since start (crashes and hangs)."""
        self._factory = factory
        # Plain data for the child, which re-validates it; secrets dump masked (local engines need none).
        self._settings_data = settings.model_dump(mode="json")
        self._stages = [(stage, provider.model_dump(mode="json")) for stage, provider in stage_providers]
        # Spawn, never fork: the parent runs threads (executors, couriers) a fork would copy mid-state.
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._couriers: list[_Courier] = []
        self._queue: WorkQueue[_Request] = WorkQueue(
            queue_limit, stale_s={Priority.PARTIAL: partial_stale_s} if partial_stale_s else None
        )
        self._ids = itertools.count(1)
        self._service_s: deque[float] = deque(maxlen=32)
        self._infos: list[EngineInfo] = []
        self._phase: Literal["new", "starting", "running", "draining", "closed"] = "new"
        self._replacing: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()
        """Set whenever a request ends or a worker exits; shutdown waits on it."""

    # -- what the rest of hark reads ------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Every worker warmed at start-up, and at least one can serve now."""
        return self._phase == "running" and self.size > 0

    @property
    def size(self) -> int:
        """Live, warmed workers (idle or busy)."""
        return sum(1 for w in self._workers if w.state in ("idle", "busy"))

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def queue(self) -> WorkQueue[_Request]:
        """The waiting line: its depth, waits and shed work per priority (for metrics)."""
        return self._queue

    @property
    def in_flight(self) -> int:
        return sum(1 for w in self._workers if w.state == "busy")

    def pids(self, *, busy_only: bool = False) -> list[int]:
        states = ("busy",) if busy_only else ("idle", "busy")
        return [w.pid for w in self._workers if w.state in states]

    def engine_info(self, stage_index: int) -> EngineInfo:
        """Name, sample rate and capabilities of an engine, as its workers reported them."""
        if not self._infos:
            raise RuntimeError("the worker pool has not started")
        return self._infos[stage_index]

    @property
    def _supervising(self) -> bool:
        """Dead workers are replaced: from start-up until shutdown stops the restarts."""
        return self._phase in ("starting", "running", "draining")

    # -- start-up ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn every worker and wait until each has built and warmed its engines.

        Raises EngineError (with the child's reason) when any worker cannot start."""
        if self._phase != "new":
            raise RuntimeError("a WorkerPool starts once")
        self._phase = "starting"
        started = time.monotonic()
        try:
            # The children load their models in parallel.
            results = await asyncio.gather(
                *(self._start_one() for _ in range(self.processes)), return_exceptions=True
            )
        except BaseException:  # cancelled: no half-started pool left behind
            await self.aclose(grace_s=0.0)
            raise
        infos = [r.warmed.result() for r in results if isinstance(r, _Worker)]
        if len(infos) < self.processes:
            await self.aclose(grace_s=0.0)
            raise next(r for r in results if isinstance(r, BaseException))
        self._infos = infos[0]
        self._phase = "running"
        log.info(
            "worker pool ready",
            extra={"processes": self.processes, "seconds": round(time.monotonic() - started, 2)},
        )

    async def _start_one(self) -> _Worker:
        """Spawn a worker and wait for its warm-up. EngineError, the worker retired, on failure."""
        try:
            worker = self._spawn()
        except OSError as exc:  # out of processes or file descriptors
            raise EngineError(f"cannot start a worker process: {exc}", engine=ENGINE) from exc
        try:
            async with asyncio.timeout(self.start_timeout_s):
                await worker.warmed
        except TimeoutError:
            error = EngineError(f"worker did not warm up within {self.start_timeout_s:g} s", engine=ENGINE)
            self._retire(worker, error)
            raise error from None
        except EngineError as error:  # it reported a failure, or died
            self._retire(worker, error)
            raise
        return worker

    def _spawn(self) -> _Worker:
        loop = asyncio.get_running_loop()
        parent_end, child_end = self._ctx.Pipe()
        process = self._ctx.Process(
            target=child.main,
            args=(child_end, self._settings_data, self._stages, self._factory),
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
        worker = _Worker(process, loop)
        worker.courier = _Courier(parent_end, loop, lambda message: self._on_message(worker, message))
        worker.courier.start()
        self._couriers = [c for c in self._couriers if c.is_alive()] + [worker.courier]
        loop.add_reader(process.sentinel, self._on_exit, worker)
        self._workers.append(worker)
        return worker

    # -- requests ---------------------------------------------------------------------------

    async def call(self, stage_index: int, method: str, payload: Any) -> Any:
        """Run ``method`` on engine ``stage_index`` in a worker; its result or EngineError.

        Raises PoolBusy when every worker is busy and the queue is full. Cancelling the caller
        (barge-in, a timeout) removes a waiting request; a running one finishes in its worker
        and its result is dropped: killing the worker would cost a model reload."""
        request = self._submit(stage_index, method, payload)
        try:
            return await request.future
        except asyncio.CancelledError:
            self._withdraw(request)
            raise

    async def stream(self, stage_index: int, method: str, payload: Any) -> AsyncIterator[Any]:
        """Like :meth:`call`, for a method whose worker sends its result in pieces as it has
        them (``"synthesize_stream"``): yields each piece. Closing the iterator early is a
        cancellation: the worker finishes, and the rest is dropped."""
        chunks: asyncio.Queue[Any] = asyncio.Queue()
        request = self._submit(stage_index, method, payload, chunks=chunks)
        future = request.future
        future.add_done_callback(lambda _: chunks.put_nowait(_END))  # after every piece delivered
        try:
            while (piece := await chunks.get()) is not _END:
                yield piece
            future.result()  # the worker's error, if it failed
        finally:
            if not future.done():
                future.cancel()  # later pieces and the reply are dropped
                self._withdraw(request)

    def _submit(
        self, stage_index: int, method: str, payload: Any, *, chunks: asyncio.Queue[Any] | None = None
    ) -> _Request:
        if self._phase != "running":
            raise EngineUnavailable("the worker pool is not running", engine=ENGINE)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        work = current_work()
        request = _Request(
            next(self._ids), stage_index, method, payload, future, work, current_budget(), chunks=chunks
        )
        offer = self._queue.push(request, work, refusable=may_refuse())
        for entry in offer.evicted:
            self._shed(entry.item, "made room for more urgent work")
        if offer.accepted and request.budget is not None:
            request.budget.pause()  # until it leaves the line (_assign)
        if not offer.accepted:
            if work.priority.sheddable:
                raise WorkShed(
                    f"{work.priority.label} work shed: the engine workers are saturated",
                    engine=self._engine_name(request),
                    retry_after=self._busy().retry_after,
                )
            raise self._busy()
        self._dispatch()
        return request

    def _withdraw(self, request: _Request) -> None:
        """The caller gave up: a request still waiting never runs, and frees its slot."""
        if self._queue.remove(request):
            self._changed.set()

    def _shed(self, request: _Request, why: str) -> None:
        if not request.future.done():
            request.future.set_exception(
                WorkShed(
                    f"{request.work.priority.label} work shed ({why})", engine=self._engine_name(request)
                )
            )

    def admit(self) -> None:
        """Raise what :meth:`call` would raise at once for unmarked (REQUEST) work: PoolBusy when
        the line is full of work at least as urgent, EngineUnavailable when the pool is not
        running. HTTP handlers call it before entering a fallback chain, which would turn
        PoolBusy into a generic EngineError."""
        if self._phase != "running":
            raise EngineUnavailable("the worker pool is not running", engine=ENGINE)
        idle = any(w.state == "idle" for w in self._workers)
        if self._queue.full and not idle and not any(r.work.priority.sheddable for r in self._queue):
            raise self._busy()

    def pressure(self, window_s: float = 10.0) -> float:
        """Seconds conversations' FINAL work waited for a worker at worst lately: under a
        service time while the workers keep up, more at saturation. Admission control reads it."""
        return self._queue.final_wait(window_s)

    def _busy(self) -> PoolBusy:
        per_request = fmean(self._service_s) if self._service_s else DEFAULT_SERVICE_S
        backlog = len(self._queue) + self.in_flight
        retry_after = min(60.0, max(0.1, per_request * backlog / max(1, self.size)))
        return PoolBusy(
            f"all {self.processes} engine workers are busy and {len(self._queue)} requests are waiting; "
            f"retry in about {retry_after:.1f} s",
            retry_after=retry_after,
        )

    def _dispatch(self) -> None:
        """Hand waiting requests to idle workers, most urgent first (see ``hark.work_queue``)."""
        for worker in self._workers:
            if worker.state != "idle":
                continue
            while True:
                entry, stale = self._queue.pop()
                for old in stale:
                    self._shed(old.item, "waited past its use")
                if entry is None:
                    return
                if not entry.item.future.done():  # else its caller gave up
                    self._assign(worker, entry.item)
                    break

    def _assign(self, worker: _Worker, request: _Request) -> None:
        worker.state = "busy"
        worker.current = request
        request.started = time.monotonic()
        if request.budget is not None:
            request.budget.restart()  # the wait in line was load, not the engine stalling
        request.timer = asyncio.get_running_loop().call_later(
            self.request_timeout_s, self._on_timeout, worker, request
        )
        worker.courier.send((request.id, request.stage_index, request.method, request.payload))

    def _engine_name(self, request: _Request) -> str:
        return self._infos[request.stage_index].name if self._infos else ENGINE

    # -- what the children say --------------------------------------------------------------

    def _on_message(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        if worker.state == "retired":
            return  # late words from a worker already given up on
        kind = message[0]
        if kind == "ready":
            _, infos, warm_s = message
            worker.state, worker.served = "idle", True
            log.info("worker warmed", extra={"pid": worker.pid, "warm_s": round(warm_s, 2)})
            if not worker.warmed.done():
                worker.warmed.set_result(infos)
            self._dispatch()
        elif kind == "failed":
            # The child exits by itself; whoever awaits its start-up reports the reason.
            if not worker.warmed.done():
                failed = EngineError(f"worker start-up failed: {message[1]}", engine=ENGINE)
                worker.warmed.set_exception(failed)
        elif kind == "broken":
            broken = EngineError(f"worker sent an unreadable reply ({message[1]})", retryable=True)
            self._retire(worker, broken)
        else:
            self._on_reply(worker, message)

    def _on_reply(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        request = worker.current
        if request is None or request.id != message[0]:
            return
        if message[1] == "chunk":  # a piece of a streaming request; the worker is still on it
            if request.chunks is not None and not request.future.done():
                request.chunks.put_nowait(message[2])
            return
        self._release(worker, request)
        self._service_s.append(time.monotonic() - request.started)
        if not request.future.done():  # else its caller gave up (barge-in): the result is dropped
            if message[1] == "ok":
                request.future.set_result(message[2])
            else:
                request.future.set_exception(
                    EngineError(message[2], retryable=bool(message[3]), engine=self._engine_name(request))
                )
        self._dispatch()

    def _release(self, worker: _Worker, request: _Request) -> None:
        self._changed.set()
        worker.current = None
        if worker.state == "busy":
            worker.state = "idle"
        if request.timer is not None:
            request.timer.cancel()

    # -- supervision ------------------------------------------------------------------------

    def _on_timeout(self, worker: _Worker, request: _Request) -> None:
        if worker.current is not request:
            return
        log.warning(
            "worker hung; killing it",
            extra={"pid": worker.pid, "request": request.id, "timeout_s": self.request_timeout_s},
        )
        self._retire(
            worker,
            EngineError(
                f"worker process {worker.pid} did not finish {request.method} within "
                f"{self.request_timeout_s:g} s; it was killed and is being restarted",
                retryable=True,
                engine=self._engine_name(request),
            ),
        )

    def _retire(self, worker: _Worker, error: EngineError) -> None:
        """Take a worker out of service, fail its request, SIGKILL it; its sentinel reaps it."""
        if worker.state == "retired":
            return
        worker.state = "retired"
        self._fail_current(worker, error)
        if not worker.warmed.done():
            worker.warmed.set_exception(error)
        worker.courier.stop()
        worker.process.kill()  # a hung engine may not answer anything gentler

    def _fail_current(self, worker: _Worker, error: EngineError) -> None:
        request = worker.current
        if request is None:
            return
        self._release(worker, request)
        if not request.future.done():
            request.future.set_exception(error)

    def _on_exit(self, worker: _Worker) -> None:
        """The child's sentinel became readable: it has exited. Reap it, fail its request,
        and (if it had been serving) start a replacement."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(worker.process.sentinel)
        worker.process.join()  # already exited: returns at once, leaves no zombie
        code = worker.process.exitcode
        self._workers.remove(worker)
        self._changed.set()
        worker.courier.stop()
        if worker.state != "retired":
            request = worker.current
            doing = f"running {request.method} (request {request.id})" if request else worker.state
            error = EngineError(
                f"worker process died ({_exit_status(code)}) while {doing}",
                retryable=True,
                engine=self._engine_name(request) if request else ENGINE,
            )
            if worker.served and self._phase != "closed":  # at shutdown, exiting is the point
                log.warning("worker died", extra={"pid": worker.pid, "exit_code": code, "while": doing})
            self._retire(worker, error)
        if worker.served and self._supervising:
            task = loop.create_task(self._replace())
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)

    async def _replace(self) -> None:
        """Start a worker in place of a dead one; keep trying, backing off, while it fails."""
        delay, longest = RESTART_BACKOFF_S
        while self._supervising:
            started = time.monotonic()
            try:
                worker = await self._start_one()
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

    async def aclose(self, grace_s: float = 5.0) -> None:
        """Stop the pool; requests already accepted get ``grace_s`` to finish. Idempotent."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shutdown(grace_s))
        # Shielded: a caller that stops waiting must not leave children half shut down.
        await asyncio.shield(self._closing)

    async def _shutdown(self, grace_s: float) -> None:
        loop = asyncio.get_running_loop()
        # 1. Refuse new requests (call() checks the phase); restarts may still serve the queue.
        self._phase = "draining"
        # 2. Let accepted requests, waiting and running, finish within the grace period.
        await self._wait_until(lambda: not self._queue and not self.in_flight, grace_s)
        # 3. No more restarts; a worker still starting is stopped with the rest.
        self._phase = "closed"
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*self._replacing, return_exceptions=True)
        # 4. Whatever did not finish fails now. A worker mid-request or mid-load would not read
        #    an EOF soon: SIGKILL it. An idle one gets its pipe closed: it sees EOF, closes its
        #    engines and exits.
        closed = EngineUnavailable("the worker pool shut down before this request ran", engine=ENGINE)
        for request in self._queue.drain():
            if not request.future.done():
                request.future.set_exception(closed)
        for worker in list(self._workers):
            if not worker.warmed.done():
                worker.warmed.cancel()  # nobody awaits it any more
            if worker.state in ("starting", "busy"):
                self._retire(worker, closed)
            else:
                worker.courier.stop()
        # 5. Give them a moment, then SIGKILL; _on_exit reaps each (join), so no zombies remain.
        await self._wait_until(lambda: not self._workers, EXIT_WAIT_S)
        for worker in self._workers:
            worker.process.kill()
        await self._wait_until(lambda: not self._workers, EXIT_WAIT_S)
        for worker in list(self._workers):  # not expected: a process the kernel would not end
            loop.remove_reader(worker.process.sentinel)
            await asyncio.to_thread(worker.process.join, EXIT_WAIT_S)
            self._workers.remove(worker)
        # 6. The couriers end when their pipes close.
        couriers, self._couriers = self._couriers, []
        await asyncio.to_thread(_join_all, couriers, EXIT_WAIT_S)

    async def _wait_until(self, done: Callable[[], bool], seconds: float) -> None:
        """Wait until ``done()`` (re-checked whenever a request or a worker ends), or ``seconds``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while not done():
                    self._changed.clear()
                    await self._changed.wait()


def _join_all(threads: list[_Courier], seconds: float) -> None:
    for thread in threads:
        thread.join(seconds)


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"exit code {code}, {signal.Signals(-code).name}"
    return f"exit code {code}"
