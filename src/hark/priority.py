"""How urgent a piece of engine work is, so that under load the work someone waits for goes first.

A conversation marks what it asks the engines for; the engines' queues (the worker pool) read the
mark when they choose what runs next and what to drop::

    with work_as(Priority.PARTIAL):
        transcript = await stt.transcribe(audio)     # may be shed under load: WorkShed

The mark travels in a context variable, so the STT/TTS protocols, the fallback chains and every
provider stay as they are: engines know nothing of conversations, and a provider that has no
queue of its own simply ignores it. Tasks started inside ``work_as`` carry the mark with them.
Work nobody marked is :attr:`Priority.REQUEST` (an HTTP request, a meeting segment).

The mark is a mutable :class:`Work`: a speculative transcript the turn ended on, or a held reply
that is released, is *promoted* (``work.promote()``) and its waiting requests move up the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
from collections.abc import Iterator
from dataclasses import dataclass


class Priority(enum.IntEnum):
    """Lower runs first. Only ``SPECULATIVE`` and ``PARTIAL`` work is ever shed."""

    FINAL = 0
    """A finished turn's transcript, the TTS of the reply being spoken: late, never lost."""
    REQUEST = 1
    """An API request someone waits for: refused (503 + Retry-After) when the queue is full."""
    SPECULATIVE = 2
    """Started at a pause before the turn is known to be over; useless if the user goes on."""
    PARTIAL = 3
    """An interim transcript: a courtesy, superseded by the next one."""

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def sheddable(self) -> bool:
        return self >= Priority.SPECULATIVE


@dataclass(eq=False, slots=True)
class Work:
    """One piece of work's class, shared by every request made for it."""

    priority: Priority

    def promote(self, priority: Priority = Priority.FINAL) -> None:
        """Raise the class of work already submitted (never lowers it)."""
        self.priority = min(self.priority, priority)


_current: contextvars.ContextVar[Work | None] = contextvars.ContextVar("hark_work", default=None)
_refusable: contextvars.ContextVar[bool] = contextvars.ContextVar("hark_work_refusable", default=False)


def current_work() -> Work:
    """The caller's mark; unmarked work is a REQUEST."""
    work = _current.get()
    return work if work is not None else Work(Priority.REQUEST)


@contextlib.contextmanager
def work_as(work: Work | Priority) -> Iterator[Work]:
    """Mark the engine calls made inside the block (and tasks started there)."""
    mark = work if isinstance(work, Work) else Work(work)
    token = _current.set(mark)
    try:
        yield mark
    finally:
        _current.reset(token)


def may_refuse() -> bool:
    """Whether a full queue may refuse the caller's work whatever its class (see :func:`refusable`)."""
    return _refusable.get()


@contextlib.contextmanager
def refusable(allowed: bool = True) -> Iterator[None]:
    """Inside the block a full queue may refuse even FINAL work, because the caller (a fallback
    chain with spill-over) can take it elsewhere."""
    token = _refusable.set(allowed)
    try:
        yield
    finally:
        _refusable.reset(token)


class Budget:
    """The time a caller gives one engine attempt (a fallback chain's first-result budget).

    A line that makes the work wait calls :meth:`pause` when the work joins it and
    :meth:`restart` when the work starts running, so the budget counts from then: waiting in
    line is load, not a stalled provider, and must not open its circuit. Once running, the
    budget applies in full (a hang is still a hang)."""

    def __init__(self, timeout: asyncio.Timeout, seconds: float) -> None:
        self._timeout = timeout
        self.seconds = seconds

    def pause(self) -> None:
        self._reschedule(None)

    def restart(self) -> None:
        self._reschedule(asyncio.get_running_loop().time() + self.seconds)

    def _reschedule(self, when: float | None) -> None:
        if self._timeout.expired():
            return
        with contextlib.suppress(RuntimeError):  # the caller's block has ended: nothing to change
            self._timeout.reschedule(when)


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("hark_work_budget", default=None)


def current_budget() -> Budget | None:
    return _budget.get()


@contextlib.contextmanager
def budget(timeout: asyncio.Timeout, seconds: float) -> Iterator[None]:
    """The engine call in the block has ``seconds`` from when it starts running (see Budget)."""
    token = _budget.set(Budget(timeout, seconds))
    try:
        yield
    finally:
        _budget.reset(token)
