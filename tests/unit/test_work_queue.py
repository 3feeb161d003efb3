"""The worker pool's line (hark.work_queue) and the work marks (hark.priority): pure, with an
injected clock. Under pressure the least useful work goes first; FINAL work is never shed."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hark.engines._blocking import BlockingRunner
from hark.priority import Priority, Work, current_work, may_refuse, refusable, work_as
from hark.work_queue import WAIT_BUCKETS, ShedReason, WorkQueue

FINAL, REQUEST, SPECULATIVE, PARTIAL = list(Priority)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def line(limit: int, **kw: object) -> tuple[WorkQueue[str], Clock]:
    clock = Clock()
    return WorkQueue(limit, clock=clock, **kw), clock  # type: ignore[arg-type]


def drain(queue: WorkQueue[str]) -> list[str]:
    order = []
    while (entry := queue.pop()[0]) is not None:
        order.append(entry.item)
    return order


def test_most_urgent_class_first_then_oldest_first() -> None:
    queue, _ = line(10)
    arrivals = [("p1", PARTIAL), ("s1", SPECULATIVE), ("f1", FINAL), ("r1", REQUEST), ("f2", FINAL)]
    for item, priority in arrivals:
        assert queue.push(item, Work(priority)).accepted
    assert queue.depth() == {FINAL: 2, REQUEST: 1, SPECULATIVE: 1, PARTIAL: 1}
    assert drain(queue) == ["f1", "f2", "r1", "s1", "p1"]


def test_promoted_work_moves_up_while_it_waits() -> None:
    queue, _ = line(10)
    speculation = Work(SPECULATIVE)
    queue.push("request", Work(REQUEST))
    queue.push("speculative transcript", speculation)
    speculation.promote()  # the turn ended on that pause: it is the final transcript now
    speculation.promote(PARTIAL)  # promoting never lowers a class
    assert speculation.priority is FINAL
    assert drain(queue) == ["speculative transcript", "request"]


def test_a_full_line_sheds_the_least_urgent_oldest_work_for_more_urgent_work() -> None:
    queue, _ = line(3)
    queue.push("s1", Work(SPECULATIVE))
    queue.push("p1", Work(PARTIAL))
    queue.push("p2", Work(PARTIAL))
    offer = queue.push("f1", Work(FINAL))
    assert offer.accepted and [e.item for e in offer.evicted] == ["p1"]  # a partial before a speculation
    offer = queue.push("r1", Work(REQUEST))
    assert offer.accepted and [e.item for e in offer.evicted] == ["p2"]
    offer = queue.push("s2", Work(SPECULATIVE))  # nothing less urgent than itself to displace
    assert not offer.accepted and offer.evicted == []
    assert queue.shed[(PARTIAL, ShedReason.EVICTED)] == 2
    assert queue.shed[(SPECULATIVE, ShedReason.REFUSED)] == 1
    assert drain(queue) == ["f1", "r1", "s1"]


def test_final_work_joins_a_full_line_late_but_never_lost() -> None:
    queue, _ = line(2)
    queue.push("f1", Work(FINAL))
    queue.push("f2", Work(FINAL))
    assert not queue.push("r1", Work(REQUEST)).accepted  # an API request gets its 503
    assert not queue.push("p1", Work(PARTIAL)).accepted
    assert queue.push("f3", Work(FINAL)).accepted  # past the limit
    assert len(queue) == 3
    # ...unless whoever asked can take it elsewhere (a fallback chain spilling over).
    assert not queue.push("f4", Work(FINAL), refusable=True).accepted
    assert sum(n for (p, _), n in queue.shed.items() if p is FINAL) == 1  # that refusal
    assert drain(queue) == ["f1", "f2", "f3"]


def test_partials_that_waited_past_their_use_are_dropped_when_they_come_up() -> None:
    queue, clock = line(10, stale_s={PARTIAL: 1.0})
    queue.push("old partial", Work(PARTIAL))
    queue.push("old speculation", Work(SPECULATIVE))
    clock.now += 0.6
    queue.push("new partial", Work(PARTIAL))
    clock.now += 0.6  # the first partial has waited 1.2 s, the second 0.6 s
    entry, stale = queue.pop()
    assert entry is not None and entry.item == "old speculation"  # no staleness for its class
    assert [e.item for e in stale] == ["old partial"]
    assert queue.shed[(PARTIAL, ShedReason.STALE)] == 1
    assert drain(queue) == ["new partial"]


def test_waits_are_recorded_per_class_and_final_waits_give_the_pressure() -> None:
    queue, clock = line(10)
    queue.push("f1", Work(FINAL))
    queue.push("p1", Work(PARTIAL))
    clock.now += 0.3
    assert queue.final_wait(10.0) == pytest.approx(0.3)  # still waiting counts
    queue.pop()
    clock.now += 2.0
    queue.pop()
    final, partial = queue.waits[FINAL], queue.waits[PARTIAL]
    assert final.count == 1 and final.total_s == pytest.approx(0.3)
    assert final.buckets[WAIT_BUCKETS.index(0.5)] == 1 and final.buckets[WAIT_BUCKETS.index(0.25)] == 0
    assert partial.count == 1 and partial.total_s == pytest.approx(2.3)
    assert queue.final_wait(10.0) == pytest.approx(0.3)  # a partial's wait is no pressure
    clock.now += 10.0
    assert queue.final_wait(10.0) == 0.0  # out of the window


def test_withdrawn_and_drained_work() -> None:
    queue, _ = line(4)
    queue.push("a", Work(PARTIAL))
    queue.push("b", Work(FINAL))
    assert queue.remove("a") and not queue.remove("a")
    queue.push("c", Work(SPECULATIVE))
    assert queue.drain() == ["b", "c"] and len(queue) == 0


async def test_marks_travel_with_the_tasks_started_under_them() -> None:
    assert current_work().priority is REQUEST and not may_refuse()  # unmarked work
    seen: list[tuple[Priority, bool]] = []

    async def engine_call() -> None:
        seen.append((current_work().priority, may_refuse()))

    with work_as(PARTIAL):
        task = asyncio.create_task(engine_call())
        with refusable():
            await engine_call()
    await task
    await engine_call()
    assert seen == [(PARTIAL, True), (PARTIAL, False), (REQUEST, False)]


async def test_an_engines_executor_runs_the_most_urgent_waiting_call_first() -> None:
    runner = BlockingRunner("test", workers=1)
    gate = threading.Event()
    order: list[str] = []

    def job(name: str) -> str:
        order.append(name)
        return name

    try:
        first = asyncio.create_task(runner.run(lambda: gate.wait(5.0) and job("running")))
        await asyncio.sleep(0.05)
        waiting = []
        for name, priority in [("partial", PARTIAL), ("speculative", SPECULATIVE), ("final", FINAL)]:
            with work_as(priority):
                waiting.append(asyncio.create_task(runner.run(lambda name=name: job(name))))
        given_up = asyncio.create_task(runner.run(lambda: job("cancelled")))
        await asyncio.sleep(0.05)
        given_up.cancel()
        gate.set()
        assert await first == "running"
        assert await asyncio.gather(*waiting) == ["partial", "speculative", "final"]
        assert order == ["running", "final", "speculative", "partial"]
        assert await runner.run(lambda: job("after")) == "after"  # no thread lost to the cancel
    finally:
        gate.set()
        runner.shutdown()
