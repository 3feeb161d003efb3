"""The engine worker pool with fake engines in real spawned processes: matching, crashes, hangs,
backpressure, cancellation and shutdown."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hark.assembly import worker_settings
from hark.config import FallbackSettings, FasterWhisperOptions, ProviderConfig, Settings, STTSettings
from hark.engines.base import Transcript
from hark.engines.fallback import FallbackSTT
from hark.errors import EngineError, EngineUnavailable, WorkShed
from hark.priority import Priority, work_as
from hark.work_queue import ShedReason
from hark.workers import PoolBusy, PooledSTT, PooledTTS, WorkerPool, available_cores, pooled_engines
from tests.fakes import CRASH, FAIL, HANG, fake_audio, fake_factory

REQUEST_TIMEOUT_S = 2.0
RECOVERY_S = 20.0
"""Generous: a replacement is a fresh interpreter, and this machine has two cores."""


def make_pool(processes: int, queue_limit: int, log: Path | None = None, **options: object) -> WorkerPool:
    stt = ProviderConfig(kind="sleepy", options={"log": str(log) if log else None, **options})
    return WorkerPool(
        [("stt", stt), ("tts", ProviderConfig(kind="echo"))],
        Settings(),
        processes=processes,
        queue_limit=queue_limit,
        request_timeout_s=REQUEST_TIMEOUT_S,
        start_timeout_s=60.0,
        factory=fake_factory,
    )


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def proxies(pool: WorkerPool) -> tuple[PooledSTT, PooledTTS]:
    stt, tts = pooled_engines(pool)
    assert isinstance(stt, PooledSTT) and isinstance(tts, PooledTTS)
    return stt, tts


def alive(pid: int) -> bool:
    """True while the process exists, zombies included (a reaped pid is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def worker_children() -> set[int]:
    """Pids of this process's live worker children (other tests' pools included)."""
    return {p.pid for p in multiprocessing.active_children() if p.name == "hark-worker" and p.pid}


@pytest.fixture(scope="module")
def stt_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workers") / "stt.log"


@pytest.fixture(scope="module")
async def pool(stt_log: Path) -> AsyncIterator[WorkerPool]:
    """Two workers shared by the tests below; each test starts by waiting for full strength."""
    pool = make_pool(processes=2, queue_limit=32, log=stt_log)
    assert not pool.ready
    await pool.start()
    yield pool
    await pool.aclose()


@pytest.fixture
async def full(pool: WorkerPool) -> WorkerPool:
    await eventually(lambda: pool.size == 2 and pool.in_flight == 0, RECOVERY_S)
    return pool


async def test_pool_is_ready_with_engine_facts_reported_by_the_workers(full: WorkerPool) -> None:
    assert full.ready and full.size == 2 and full.queue_depth == 0
    assert all(pid != os.getpid() for pid in full.pids())
    stt, tts = proxies(full)
    assert (stt.name, stt.sample_rate) == ("sleepy", 16_000)
    assert (tts.name, tts.sample_rate) == ("echo", 22_050)
    await stt.check()


async def test_concurrent_requests_get_their_own_answers_from_both_workers(full: WorkerPool) -> None:
    stt, tts = proxies(full)
    lengths = [100 + i for i in range(20)]
    transcripts = await asyncio.gather(*(stt.transcribe(fake_audio(n, sleep_s=0.02)) for n in lengths))
    assert [t.text for t in transcripts] == [str(n) for n in lengths]
    assert {t.language for t in transcripts} == {str(pid) for pid in full.pids()}  # both served

    texts = [f"sentence number {i}" for i in range(10)]
    pcms = await asyncio.gather(*(_collect(tts.synthesize(text)) for text in texts))
    assert [pcm.decode("utf-16-le") for pcm in pcms] == texts


async def test_sigkill_mid_request_fails_only_that_request_and_the_pool_recovers(full: WorkerPool) -> None:
    stt, _ = proxies(full)
    restarts = full.restarts
    victim_task = asyncio.create_task(stt.transcribe(fake_audio(4242, sleep_s=1.5)))
    await eventually(lambda: full.in_flight == 1)
    [victim] = full.pids(busy_only=True)
    # Another session's request on the other worker must not notice.
    bystander = asyncio.create_task(stt.transcribe(fake_audio(77, sleep_s=0.3)))
    await eventually(lambda: full.in_flight == 2)

    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    died = r"died \(exit code -9, SIGKILL\) while running transcribe"
    with pytest.raises(EngineError, match=died) as error:
        await victim_task
    assert time.monotonic() - killed < 3.0
    assert error.value.retryable

    assert (await bystander).text == "77"
    assert (await stt.transcribe(fake_audio(55))).text == "55"  # the next one succeeds
    await eventually(lambda: full.size == 2, RECOVERY_S)
    assert victim not in full.pids() and not alive(victim)
    assert full.restarts == restarts + 1


async def test_a_crash_inside_the_engine_reports_its_exit_code(full: WorkerPool) -> None:
    stt, _ = proxies(full)
    with pytest.raises(EngineError, match=r"died \(exit code 3\)"):
        await stt.transcribe(fake_audio(10, magic=CRASH))
    assert (await stt.transcribe(fake_audio(11))).text == "11"
    await eventually(lambda: full.size == 2, RECOVERY_S)


async def test_a_hung_worker_is_killed_at_the_request_timeout_and_restarted(full: WorkerPool) -> None:
    stt, _ = proxies(full)
    restarts, before = full.restarts, set(full.pids())
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"did not finish transcribe within 2 s") as error:
        await stt.transcribe(fake_audio(10, magic=HANG))
    took = time.monotonic() - started
    assert REQUEST_TIMEOUT_S * 0.8 <= took <= REQUEST_TIMEOUT_S * 1.2
    assert error.value.retryable
    await eventually(lambda: full.size == 2, RECOVERY_S)
    assert len(before - set(full.pids())) == 1
    assert full.restarts == restarts + 1


async def test_an_engine_error_crosses_the_pipe_and_the_worker_survives(full: WorkerPool) -> None:
    stt, _ = proxies(full)
    before = set(full.pids())
    with pytest.raises(EngineError, match="fake refusal") as error:
        await stt.transcribe(fake_audio(10, magic=FAIL))
    assert not error.value.retryable and error.value.engine == "sleepy"
    assert set(full.pids()) == before


async def test_a_cancelled_waiting_request_never_runs(full: WorkerPool, stt_log: Path) -> None:
    stt, _ = proxies(full)
    busy = [asyncio.create_task(stt.transcribe(fake_audio(n, sleep_s=0.4))) for n in (1001, 1002)]
    await eventually(lambda: full.in_flight == 2)
    waiting = asyncio.create_task(stt.transcribe(fake_audio(777)))
    await eventually(lambda: full.queue_depth == 1)
    waiting.cancel()  # barge-in
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert full.queue_depth == 0
    assert [t.text for t in await asyncio.gather(*busy)] == ["1001", "1002"]
    assert (await stt.transcribe(fake_audio(778))).text == "778"
    ran = await asyncio.to_thread(lambda: stt_log.read_text().split())
    assert "778" in ran and "777" not in ran


async def test_a_cancelled_running_request_finishes_in_its_worker_which_is_kept(full: WorkerPool) -> None:
    stt, _ = proxies(full)
    before, restarts = set(full.pids()), full.restarts
    running = asyncio.create_task(stt.transcribe(fake_audio(31, sleep_s=0.3)))
    await eventually(lambda: full.in_flight == 1)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await eventually(lambda: full.in_flight == 0)  # the result arrived and was dropped
    assert set(full.pids()) == before and full.restarts == restarts
    assert (await stt.transcribe(fake_audio(32))).text == "32"


async def test_a_full_queue_raises_pool_busy_and_loses_nothing_accepted() -> None:
    pool = make_pool(processes=1, queue_limit=2)
    await pool.start()
    try:
        stt, _ = proxies(pool)
        await stt.transcribe(fake_audio(5, sleep_s=0.2))  # a service time for the estimate
        accepted = [asyncio.create_task(stt.transcribe(fake_audio(n, sleep_s=0.2))) for n in (61, 62, 63)]
        await eventually(lambda: pool.in_flight == 1 and pool.queue_depth == 2)
        with pytest.raises(PoolBusy):
            pool.admit()  # what an HTTP handler asks before starting work
        with pytest.raises(PoolBusy) as busy:
            await stt.transcribe(fake_audio(64))
        assert busy.value.retryable and busy.value.retry_after > 0
        assert 0.3 < busy.value.retry_after < 2.0  # three requests of ~0.2 s ahead, one worker
        assert [t.text for t in await asyncio.gather(*accepted)] == ["61", "62", "63"]
        assert (await stt.transcribe(fake_audio(65))).text == "65"  # room again
    finally:
        await pool.aclose()


async def test_under_pressure_finals_run_first_and_partials_are_shed_never_finals(tmp_path: Path) -> None:
    log = tmp_path / "stt.log"
    pool = make_pool(processes=1, queue_limit=2, log=log)
    await pool.start()
    try:
        stt, _ = proxies(pool)

        def ask(n: int, priority: Priority) -> asyncio.Task[Transcript]:
            with work_as(priority):
                return asyncio.create_task(stt.transcribe(fake_audio(n)))

        with work_as(Priority.FINAL):
            busy = asyncio.create_task(stt.transcribe(fake_audio(70, sleep_s=0.5)))
        await eventually(lambda: pool.in_flight == 1)
        partial, speculative = ask(71, Priority.PARTIAL), ask(72, Priority.SPECULATIVE)
        await eventually(lambda: pool.queue_depth == 2)
        finals = [ask(73, Priority.FINAL), ask(74, Priority.FINAL), ask(75, Priority.FINAL)]
        late_partial = ask(76, Priority.PARTIAL)
        with pytest.raises(WorkShed):
            await partial  # made room for the first final
        with pytest.raises(WorkShed):
            await speculative  # and for the second
        with pytest.raises(WorkShed):
            await late_partial  # arrived at a line full of finals
        assert pool.queue_depth == 3  # the third final joined past the limit: late, not lost
        assert [t.text for t in await asyncio.gather(busy, *finals)] == ["70", "73", "74", "75"]
        assert log.read_text().split()[-4:] == ["70", "73", "74", "75"]  # nothing shed ever ran
        shed = pool.queue.shed
        assert shed[(Priority.PARTIAL, ShedReason.EVICTED)] == 1
        assert shed[(Priority.SPECULATIVE, ShedReason.EVICTED)] == 1
        assert shed[(Priority.PARTIAL, ShedReason.REFUSED)] == 1
        assert sum(n for (p, _), n in shed.items() if p is Priority.FINAL) == 0
        assert pool.queue.waits[Priority.FINAL].count == 4
        assert pool.pressure() > 0  # the finals waited behind the running request
    finally:
        await pool.aclose()


async def test_time_waiting_for_a_worker_is_not_counted_against_the_providers_budget() -> None:
    pool = make_pool(processes=1, queue_limit=4)
    await pool.start()
    try:
        stt, _ = proxies(pool)
        once = FallbackSettings(attempts=1, breaker_failures=1)
        chain = FallbackSTT([(ProviderConfig(kind="sleepy", timeout=0.6), stt)], once)
        busy = asyncio.create_task(stt.transcribe(fake_audio(81, sleep_s=1.5)))
        await eventually(lambda: pool.in_flight == 1)
        with work_as(Priority.FINAL):
            assert (await chain.transcribe(fake_audio(82))).text == "82"  # waited ~1.5 s: late, not stalled
        assert chain.status()[0]["circuit"] == "closed" and chain.status()[0]["failures"] == {}
        with pytest.raises(EngineError):  # running past the budget is still a stall
            await chain.transcribe(fake_audio(83, sleep_s=1.5))
        assert chain.status()[0]["failures"] == {"timeout": 1}
        await busy
    finally:
        await pool.aclose()


async def test_a_worker_that_cannot_build_its_engine_fails_start_with_the_reason() -> None:
    before = worker_children()
    pool = make_pool(processes=1, queue_limit=1, fail_start=True)
    with pytest.raises(EngineError, match="the fake engine refuses to start"):
        await pool.start()
    assert not pool.ready and pool.size == 0 and pool.pids() == []
    assert worker_children() <= before


async def test_a_worker_that_does_not_warm_up_in_time_fails_start_and_is_killed() -> None:
    stt = ProviderConfig(kind="sleepy", options={"build_s": 30})
    pool = WorkerPool(
        [("stt", stt)],
        Settings(),
        processes=1,
        queue_limit=1,
        request_timeout_s=1.0,
        start_timeout_s=1.0,
        factory=fake_factory,
    )
    before = worker_children()
    started = time.monotonic()
    with pytest.raises(EngineError, match="did not warm up within 1 s"):
        await pool.start()
    assert time.monotonic() - started < 3.0
    assert not pool.ready and pool.size == 0
    assert worker_children() <= before  # killed and reaped


async def test_aclose_finishes_accepted_work_then_leaves_no_child_behind() -> None:
    pool = make_pool(processes=1, queue_limit=4)
    await pool.start()
    stt, _ = proxies(pool)
    [pid] = pool.pids()
    in_flight = asyncio.create_task(stt.transcribe(fake_audio(91, sleep_s=0.3)))
    queued = asyncio.create_task(stt.transcribe(fake_audio(92)))
    await eventually(lambda: pool.in_flight == 1 and pool.queue_depth == 1)
    await pool.aclose()
    assert (await in_flight).text == "91" and (await queued).text == "92"
    assert not alive(pid)  # exited and reaped: no zombie
    assert not pool.ready and pool.size == 0
    with pytest.raises(EngineUnavailable):
        await stt.transcribe(fake_audio(93))
    with pytest.raises(EngineUnavailable):
        await stt.check()
    await pool.aclose()  # idempotent


async def test_aclose_kills_a_request_that_outlives_the_grace_period() -> None:
    pool = make_pool(processes=1, queue_limit=4)
    await pool.start()
    stt, _ = proxies(pool)
    [pid] = pool.pids()
    stuck = asyncio.create_task(stt.transcribe(fake_audio(10, magic=HANG)))
    await eventually(lambda: pool.in_flight == 1)
    started = time.monotonic()
    await pool.aclose(grace_s=0.2)
    assert time.monotonic() - started < 1.5
    with pytest.raises(EngineUnavailable, match="shut down"):
        await stuck
    assert not alive(pid)


def test_factory_must_be_picklable() -> None:
    with pytest.raises(ValueError, match="module-level"):
        WorkerPool(
            [("stt", ProviderConfig(kind="sleepy"))],
            Settings(),
            processes=1,
            queue_limit=1,
            request_timeout_s=1.0,
            factory=lambda stage, provider, settings: None,
        )


def test_each_worker_transcribes_on_every_core_one_request_at_a_time() -> None:
    # Not cores // processes: a lone transcription, the common case, is faster on every core.
    stt = worker_settings(Settings(stt=STTSettings(workers=4))).stt
    assert (stt.faster_whisper.threads, stt.workers) == (available_cores(), 1)
    chosen = STTSettings(faster_whisper=FasterWhisperOptions(threads=3))
    assert worker_settings(Settings(stt=chosen)).stt.faster_whisper.threads == 3


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])
