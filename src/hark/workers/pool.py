"""A supervised pool of engine worker processes: the parent's side.

The parent holds no model. Each worker is a spawned process that built every pooled engine once
and warmed it (see ``hark.workers.child``); the pool hands it one request at a time, matched by
id (the messages are in ``hark.workers.proto``), and its supervisor (``hark.workers.supervisor``)
replaces it when it dies or hangs. Requests beyond the workers wait in line by priority
(``hark.priority``, ``hark.work_queue``): a finished turn's transcript and the reply being
spoken first, speculative work next, partial transcripts last. Past ``queue_limit`` the least
urgent work is shed (:class:`~hark.errors.WorkShed`), unmarked requests are refused with
:class:`PoolBusy` (HTTP 503 + Retry-After upstream), and FINAL work still joins: late, not lost.

Threads and the loop: each worker's pipe is owned by a courier thread (``hark.workers.courier``;
the loop never blocks on a pipe); every state change happens on the event loop, so the pool
needs no locks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import pickle
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from statistics import fmean
from typing import Any, Literal

from hark.config import ProviderConfig, Settings
from hark.errors import EngineError, EngineSaturated, EngineUnavailable, WorkShed
from hark.priority import Priority, current_budget, current_work, may_refuse
from hark.work_queue import WorkQueue
from hark.workers.child import Factory
from hark.workers.process import Pending
from hark.workers.proto import Done, EngineInfo, Failure, Request
from hark.workers.supervisor import ENGINE, Supervisor

log = logging.getLogger("hark.workers")

_END = object()
"""Marks the end of a streaming request's pieces."""

DEFAULT_SERVICE_S = 1.0
"""Assumed seconds per request for Retry-After before any request has been timed."""


class PoolBusy(EngineSaturated):
    """Every worker is busy and ``queue_limit`` requests at least as urgent are already waiting.

    ``retry_after`` estimates, from recent service times, when the backlog will have drained."""

    retry_after: float

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, engine=ENGINE, retry_after=retry_after)


class WorkerPool:
    """Processes that each hold every engine in ``stage_providers``; requests run one per worker.

    ``stage_providers`` lists ``(stage, provider)`` pairs (``"stt"`` or ``"tts"``); a request
    names its engine by index in that list. ``factory`` builds an engine in the child
    (``hark.engines.registry.build``, or a test double); it must be a module-level function
    (it is pickled by reference). ``partial_stale_s``: a partial transcript that waited longer
    than this is dropped unrun (the next one supersedes it)."""

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
        # Plain data for the child, which re-validates it; secrets dump masked (local engines need none).
        settings_data = settings.model_dump(mode="json")
        stages = [(stage, provider.model_dump(mode="json")) for stage, provider in stage_providers]
        # Spawn, never fork: the parent runs threads (executors, couriers) a fork would copy mid-state.
        self._workers = Supervisor(
            multiprocessing.get_context("spawn"),
            (settings_data, stages, factory),
            start_timeout_s=start_timeout_s,
            request_timeout_s=request_timeout_s,
            on_idle=self._dispatch,
            on_reply=self._on_reply,
        )
        self._queue: WorkQueue[Pending] = WorkQueue(
            queue_limit, stale_s={Priority.PARTIAL: partial_stale_s} if partial_stale_s else None
        )
        self._ids = itertools.count(1)
        self._service_s: deque[float] = deque(maxlen=32)
        self._phase: Literal["new", "starting", "running", "draining", "closed"] = "new"
        self._closing: asyncio.Future[None] | None = None

    # -- what the rest of hark reads ------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Every worker warmed at start-up, and at least one can serve now."""
        return self._phase == "running" and self.size > 0

    @property
    def size(self) -> int:
        """Live, warmed workers (idle or busy)."""
        return self._workers.size

    @property
    def restarts(self) -> int:
        """Workers replaced since start (crashes and hangs)."""
        return self._workers.restarts

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def queue(self) -> WorkQueue[Pending]:
        """The waiting line: its depth, waits and shed work per priority (for metrics)."""
        return self._queue

    @property
    def in_flight(self) -> int:
        return self._workers.in_flight

    def pids(self, *, busy_only: bool = False) -> list[int]:
        states = ("busy",) if busy_only else ("idle", "busy")
        return [w.pid for w in self._workers.workers if w.state in states]

    def engine_info(self, stage_index: int) -> EngineInfo:
        """Name, sample rate and capabilities of an engine, as its workers reported them."""
        if not self._workers.infos:
            raise RuntimeError("the worker pool has not started")
        return self._workers.infos[stage_index]

    # -- start-up ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn every worker and wait until each has built and warmed its engines.

        Raises EngineError (with the child's reason) when any worker cannot start."""
        if self._phase != "new":
            raise RuntimeError("a WorkerPool starts once")
        self._phase = "starting"
        self._workers.supervising = True
        started = time.monotonic()
        try:
            await self._workers.start(self.processes)
        except BaseException:  # a worker failed, or cancelled: no half-started pool left behind
            await self.aclose(grace_s=0.0)
            raise
        self._phase = "running"
        log.info(
            "worker pool ready",
            extra={"processes": self.processes, "seconds": round(time.monotonic() - started, 2)},
        )

    # -- requests ---------------------------------------------------------------------------

    async def call(self, stage_index: int, request: Request) -> Any:
        """Run ``request`` on engine ``stage_index`` in a worker; its result or EngineError.

        Raises PoolBusy when every worker is busy and the queue is full. Cancelling the caller
        (barge-in, a timeout) removes a waiting request; a running one finishes in its worker
        and its result is dropped: killing the worker would cost a model reload."""
        pending = self._submit(stage_index, request)
        try:
            return await pending.future
        except asyncio.CancelledError:
            self._withdraw(pending)
            raise

    async def stream(self, stage_index: int, request: Request) -> AsyncIterator[Any]:
        """Like :meth:`call`, for a request whose worker sends its result in pieces as it has
        them (:class:`~hark.workers.proto.Synthesize`): yields each piece. Closing the iterator
        early is a cancellation: the worker finishes, and the rest is dropped."""
        chunks: asyncio.Queue[Any] = asyncio.Queue()
        pending = self._submit(stage_index, request, chunks=chunks)
        future = pending.future
        future.add_done_callback(lambda _: chunks.put_nowait(_END))  # after every piece delivered
        try:
            while (piece := await chunks.get()) is not _END:
                yield piece
            future.result()  # the worker's error, if it failed
        finally:
            if not future.done():
                future.cancel()  # later pieces and the reply are dropped
                self._withdraw(pending)

    def _submit(
        self, stage_index: int, request: Request, *, chunks: asyncio.Queue[Any] | None = None
    ) -> Pending:
        if self._phase != "running":
            raise EngineUnavailable("the worker pool is not running", engine=ENGINE)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        work = current_work()
        pending = Pending(
            next(self._ids), stage_index, request, future, work, current_budget(), chunks=chunks
        )
        offer = self._queue.push(pending, work, refusable=may_refuse())
        for entry in offer.evicted:
            self._shed(entry.item, "made room for more urgent work")
        if offer.accepted and pending.budget is not None:
            pending.budget.pause()  # until it leaves the line (_dispatch)
        if not offer.accepted:
            if work.priority.sheddable:
                raise WorkShed(
                    f"{work.priority.label} work shed: the engine workers are saturated",
                    engine=self._workers.engine_name(pending),
                    retry_after=self._busy().retry_after,
                )
            raise self._busy()
        self._dispatch()
        return pending

    def _withdraw(self, pending: Pending) -> None:
        """The caller gave up: a request still waiting never runs, and frees its slot."""
        if self._queue.remove(pending):
            self._workers.changed.set()

    def _shed(self, pending: Pending, why: str) -> None:
        if not pending.future.done():
            pending.future.set_exception(
                WorkShed(
                    f"{pending.work.priority.label} work shed ({why})",
                    engine=self._workers.engine_name(pending),
                )
            )

    def admit(self) -> None:
        """Raise what :meth:`call` would raise at once for unmarked (REQUEST) work: PoolBusy when
        the line is full of work at least as urgent, EngineUnavailable when the pool is not
        running. HTTP handlers call it before entering a fallback chain, which would turn
        PoolBusy into a generic EngineError."""
        if self._phase != "running":
            raise EngineUnavailable("the worker pool is not running", engine=ENGINE)
        idle = any(w.state == "idle" for w in self._workers.workers)
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
        for worker in self._workers.workers:
            if worker.state != "idle":
                continue
            while True:
                entry, stale = self._queue.pop()
                for old in stale:
                    self._shed(old.item, "waited past its use")
                if entry is None:
                    return
                pending = entry.item
                if not pending.future.done():  # else its caller gave up
                    if pending.budget is not None:
                        pending.budget.restart()  # the wait in line was load, not the engine stalling
                    self._workers.assign(worker, pending)
                    break

    def _on_reply(self, pending: Pending, reply: Done | Failure) -> None:
        self._service_s.append(time.monotonic() - pending.started)
        if not pending.future.done():  # else its caller gave up (barge-in): the result is dropped
            match reply:
                case Done(_, result):
                    pending.future.set_result(result)
                case Failure(_, message, retryable):
                    pending.future.set_exception(
                        EngineError(message, retryable=retryable, engine=self._workers.engine_name(pending))
                    )
        self._dispatch()

    # -- shutdown ---------------------------------------------------------------------------

    async def aclose(self, grace_s: float = 5.0) -> None:
        """Stop the pool; requests already accepted get ``grace_s`` to finish. Idempotent."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shutdown(grace_s))
        # Shielded: a caller that stops waiting must not leave children half shut down.
        await asyncio.shield(self._closing)

    async def _shutdown(self, grace_s: float) -> None:
        # 1. Refuse new requests (call() checks the phase); restarts may still serve the queue.
        self._phase = "draining"
        # 2. Let accepted requests, waiting and running, finish within the grace period.
        await self._workers.wait_until(lambda: not self._queue and not self.in_flight, grace_s)
        # 3. No more restarts; a worker still starting is stopped with the rest.
        self._phase = "closed"
        await self._workers.stop_restarts()
        # 4. Whatever did not finish fails now, waiting or running.
        closed = EngineUnavailable("the worker pool shut down before this request ran", engine=ENGINE)
        for pending in self._queue.drain():
            if not pending.future.done():
                pending.future.set_exception(closed)
        # 5. The processes end (SIGKILL for a worker mid-request or one that will not exit).
        await self._workers.close(closed)
