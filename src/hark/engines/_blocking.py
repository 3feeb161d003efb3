"""Running blocking engine work off the event loop, most urgent work first."""

from __future__ import annotations

import asyncio
import queue
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from hark.errors import WorkShed
from hark.priority import Priority, current_budget, current_work
from hark.work_queue import WorkQueue

T = TypeVar("T")


def next_batch(requests: queue.SimpleQueue[T | None], limit: int) -> list[T] | None:
    """Block for one request, then take whatever else is already waiting, up to ``limit``: the
    batch a model thread runs next. ``None`` once the queue was closed with a ``None``."""
    first = requests.get()
    if first is None:
        return None
    pending = [first]
    while len(pending) < limit:
        try:
            more = requests.get_nowait()
        except queue.Empty:
            break
        if more is None:
            requests.put(None)  # seen again on the next call, which ends the thread
            break
        pending.append(more)
    return pending


PARTIAL_STALE_S = 1.0
"""A partial transcript that waited longer than this for a thread is dropped unrun."""


class BlockingRunner:
    """A named executor an engine owns, so one stage's work never queues behind another's.

    Calls beyond ``workers`` wait in priority order (``hark.priority``: a finished turn's
    transcript and the reply being spoken before speculative work, partial transcripts last), as
    in the worker pool; nothing is refused, and a partial that waited past its use is shed
    (:class:`~hark.errors.WorkShed`). Inside a worker process there is one call at a time and
    the order never matters; in process (``workers.enabled: false``) every session shares it."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"hark-{name}")
        self._running = 0
        self._waiting: WorkQueue[asyncio.Future[None]] = WorkQueue(
            sys.maxsize, stale_s={Priority.PARTIAL: PARTIAL_STALE_S}
        )

    async def run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        if self._running < self.workers and not len(self._waiting):
            self._running += 1
        else:
            turn: asyncio.Future[None] = loop.create_future()
            self._waiting.push(turn, current_work())
            if (waiting := current_budget()) is not None:
                waiting.pause()  # waiting in line is load, not the engine stalling
            try:
                await turn  # resolved with a thread reserved for this call
            except asyncio.CancelledError:
                if not self._waiting.remove(turn) and turn.done() and not turn.cancelled():
                    self._release()  # the thread was handed over as the caller gave up
                raise
            if waiting is not None:
                waiting.restart()
        try:
            return await loop.run_in_executor(self._executor, fn)
        finally:
            self._release()

    def _release(self) -> None:
        self._running -= 1
        while self._running < self.workers:
            entry, stale = self._waiting.pop()
            for old in stale:
                if not old.item.done():
                    old.item.set_exception(
                        WorkShed("partial work shed (waited past its use)", engine=self.name)
                    )
            if entry is None:
                return
            if not entry.item.done():
                self._running += 1
                entry.item.set_result(None)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
