"""The inference orchestrator: one asyncio job queue shared by every meeting.

``meetings.workers`` worker tasks take jobs from the queue. Transcription jobs are *batchable*:
a worker that takes one also takes whatever other transcription jobs are queued, up to
``meetings.batch_size``, and runs them together (concurrently through the STT chain, whose
engines run on their own executors), so a burst of segments from several meetings is cleared in
one pass instead of one by one. Other jobs (a meeting's final processing: diarisation, summary,
storage, workflows) run alone. A failing job fails only its own future.

Shutdown (:meth:`Orchestrator.aclose`) is graceful: new jobs are refused, every job already
queued or running is finished, then the workers stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

log = logging.getLogger("hark.meetings.orchestrator")

T = TypeVar("T")
JobKind = Literal["transcribe", "finalize"]


class OrchestratorClosed(RuntimeError):
    """The orchestrator is shutting down and takes no new jobs."""


@dataclass(eq=False, slots=True)
class Job:
    kind: JobKind
    meeting_id: str
    run: Callable[[], Awaitable[Any]]
    future: asyncio.Future[Any]
    queued_at: float = field(default_factory=time.monotonic)

    @property
    def batchable(self) -> bool:
        return self.kind == "transcribe"


@dataclass(slots=True)
class OrchestratorStats:
    jobs: int = 0
    failed: int = 0
    batches: int = 0
    largest_batch: int = 0
    wait_s_max: float = 0.0
    """Longest time a job waited in the queue."""


class Orchestrator:
    def __init__(self, *, workers: int, batch_size: int) -> None:
        self.workers = workers
        self.batch_size = batch_size
        self.stats = OrchestratorStats()
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._held: list[Job] = []
        """Non-batchable jobs a worker took out of the queue while gathering a batch."""
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._work(n), name=f"hark-meetings-worker-{n}") for n in range(self.workers)
        ]

    def submit(self, kind: JobKind, meeting_id: str, run: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        """Queue a job; its future resolves with what ``run`` returns (or raises)."""
        if self._closed:
            raise OrchestratorClosed("the server is shutting down")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Job(kind, meeting_id, run, future))
        return future

    async def _work(self, number: int) -> None:
        while True:
            job = await self._queue.get()
            batch = [job]
            if job.batchable:
                while len(batch) < self.batch_size:
                    try:
                        more = self._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    if more.batchable:
                        batch.append(more)
                    else:
                        self._held.append(more)
            await self._run(batch)
            # A job held back from a batch is run by the worker that took it, right after.
            while self._held:
                await self._run([self._held.pop(0)])

    async def _run(self, batch: list[Job]) -> None:
        now = time.monotonic()
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.stats.wait_s_max = max(self.stats.wait_s_max, *(now - job.queued_at for job in batch))
        try:
            await asyncio.gather(*(self._run_one(job) for job in batch))
        finally:
            for _ in batch:
                self._queue.task_done()

    async def _run_one(self, job: Job) -> None:
        self.stats.jobs += 1
        try:
            result = await job.run()
        except asyncio.CancelledError:
            if not job.future.done():
                job.future.cancel()
            raise
        except Exception as exc:
            self.stats.failed += 1
            log.warning(
                "meeting job failed",
                extra={"meeting": job.meeting_id, "kind": job.kind, "error": type(exc).__name__},
            )
            if not job.future.done():
                job.future.set_exception(exc)
            return
        if not job.future.done():
            job.future.set_result(result)

    async def aclose(self) -> None:
        # 1. Refuse new jobs.
        self._closed = True
        # 2. Finish every job already queued or running (task_done is called for each).
        if self._tasks:
            await self._queue.join()
        # 3. Stop the idle workers.
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        log.info(
            "orchestrator stopped",
            extra={
                "jobs": self.stats.jobs,
                "failed": self.stats.failed,
                "batches": self.stats.batches,
                "largest_batch": self.stats.largest_batch,
            },
        )
