"""Scenarios 7 and 8: many people talking to one box with the real local engines.

7. ``talkers`` (capacity): talking sessions are added in steps. Each streams 20 ms frames at
   real time and speaks the question every ~7 s (uniform 5.6-8.4 s from the start of its
   previous turn, or as soon as its previous answer is in when that came later: people wait for
   the answer). STT and TTS are the real local engines in the worker pool (hark's defaults), the
   LLM is the scripted fake. At each step, over a window: voice-to-voice (client side, last
   speech frame sent → first reply audio received) p50/p95/max, failed turns, sessions closed by
   the server, and the work the pool shed (``hark_worker_shed_total``). The capacity is the
   largest step with p95 ≤ 1.5 s, no failed turn and no closed session; the ramp goes on
   ``beyond`` steps past the first step that misses it, so the curve shows how it degrades.
   Admission control is off in this server: the bench measures past the point where hark would
   refuse new conversations.
8. ``soak``: N sessions (20) talking as above for a long time (10 min): sessions closed by the
   server (should be 0), turns answered and failed, voice-to-voice, resident memory of the
   server and its workers (drift from the end of the first tenth to the end), and ``/health``
   latency polled from a separate thread every 200 ms (its spread is the server's event-loop lag).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from hark.bench import stats
from hark.bench.audio import QUESTION, frames, utterance
from hark.bench.client import Received, Session
from hark.bench.server import hark_server, rss_mb

INTERVAL_S = 7.0
P95_LIMIT_MS = 1500.0
TURN_LIMIT_S = 60.0
HEALTH_EVERY_S = 0.2


def talkers_env() -> dict[str, str]:
    """hark's defaults (real engines in the worker pool), the scripted LLM, no admission limit."""
    return {
        "HARK_VAD_END_SILENCE_MS": "300",
        "HARK_LLM_PROVIDERS": '[{"kind": "scripted"}]',
        "HARK_ADMISSION_MAX_CONVERSATIONS": "0",
        "HARK_ADMISSION_MAX_WAIT_S": "0",
    }


async def _turn(session: Session, speech: list[str | bytes]) -> dict[str, Any]:
    mark = session.mark()
    _, last = session.enqueue(speech)
    try:
        created = await session.wait_for("response.created", after=mark, limit_s=TURN_LIMIT_S)
        rid = created.data["response"]["id"]

        def mine(r: Received, rid: str = rid) -> bool:
            return bool(r.data.get("response_id") == rid)

        def done(r: Received, rid: str = rid) -> bool:
            return bool(r.data["response"]["id"] == rid)

        audio = await session.wait_for("audio", mine, after=mark, limit_s=TURN_LIMIT_S)
        finished = await session.wait_for("response.done", done, after=mark, limit_s=TURN_LIMIT_S)
        end = await session.sent(last)
    except (TimeoutError, ConnectionError, KeyError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    status = finished.data["response"].get("status")
    if status != "completed":
        return {"ok": False, "error": f"response {status}"}
    return {"ok": True, "voice_to_voice_ms": round((audio.at - end) * 1000.0, 1)}


class Crowd:
    """Talking sessions, each in its own task; ``turns`` collects (completed_at, result)."""

    def __init__(self, url: str, seed: int = 7) -> None:
        self.url = url
        self.rng = random.Random(seed)
        self.sessions: list[Session] = []
        self.turns: list[tuple[float, dict[str, Any]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._speech: list[str | bytes] | None = None

    async def grow(self, target: int) -> None:
        while len(self.sessions) < target:
            session = Session(self.url)
            await session.start()
            if self._speech is None:
                self._speech = [session.encode(f) for f in frames(utterance(QUESTION).pcm)]
            self.sessions.append(session)
            self._tasks.append(asyncio.create_task(self._talk(session, self._speech)))
            await asyncio.sleep(0.05)

    async def _talk(self, session: Session, speech: list[str | bytes]) -> None:
        await asyncio.sleep(self.rng.uniform(0.5, INTERVAL_S))
        while not self._stop.is_set() and session.error is None:
            started = time.monotonic()
            result = await _turn(session, speech)
            self.turns.append((time.monotonic(), result))
            wait = started + self.rng.uniform(0.8, 1.2) * INTERVAL_S - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.5, wait))

    def closed_by_server(self) -> int:
        return sum(1 for s in self.sessions if s.error is not None)

    def window(self, since: float, until: float) -> dict[str, Any]:
        results = [t for at, t in self.turns if since <= at <= until]
        ok = [t["voice_to_voice_ms"] for t in results if t["ok"]]
        return {
            "turns": len(results),
            "turns_failed": sum(1 for t in results if not t["ok"]),
            "voice_to_voice_ms": stats.summary(ok, (50, 95)),
            "failures": sorted({t["error"] for t in results if not t["ok"]})[:3],
        }

    async def aclose(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in self.sessions), return_exceptions=True)


def shed_counts(base_url: str) -> Counter[str]:
    """``hark_worker_shed_total`` by priority, from the server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: Counter[str] = Counter()
    try:
        text = httpx.get(base_url + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return counts
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "hark_worker_shed_total":
                counts[sample.labels["priority"]] += int(sample.value)
    return counts


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the worker processes)."""
    total = rss_mb(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                total += rss_mb(int(child))
    return total


# -- 7. capacity with the real engines -------------------------------------------------------


async def _ramp(
    url: str, base_url: str, steps: list[int], window_s: float, beyond: int, log: Any
) -> list[dict[str, Any]]:
    crowd = Crowd(url)
    results: list[dict[str, Any]] = []
    misses = 0
    try:
        for target in steps:
            await crowd.grow(target)
            await asyncio.sleep(INTERVAL_S)  # every new talker has started its first turn
            shed0, t0 = await asyncio.to_thread(shed_counts, base_url), time.monotonic()
            await asyncio.sleep(window_s)
            shed1, t1 = await asyncio.to_thread(shed_counts, base_url), time.monotonic()
            step = {"sessions": target, **crowd.window(t0, t1)}
            step["closed_by_server"] = crowd.closed_by_server()
            step["shed"] = {p: shed1[p] - shed0[p] for p in ("final", "request", "speculative", "partial")}
            p95 = step["voice_to_voice_ms"]["p95"]
            step["passed"] = bool(
                p95 is not None
                and p95 <= P95_LIMIT_MS
                and not step["turns_failed"]
                and not step["closed_by_server"]
            )
            results.append(step)
            v = step["voice_to_voice_ms"]
            log(
                f"  {target} talkers: voice-to-voice p50 {v['p50']} p95 {p95} ms over {step['turns']} turns,"
                f" {step['turns_failed']} failed, {step['closed_by_server']} closed by the server,"
                f" shed {step['shed']}"
            )
            if not step["passed"]:
                misses += 1
                if misses > beyond:
                    break
    finally:
        await crowd.aclose()
    return results


def capacity(*, steps: list[int], window_s: float, beyond: int = 2, log: Any = print) -> dict[str, Any]:
    with hark_server(talkers_env()) as server:
        url = server.ws_base + "/v1/realtime?model=hark"
        ramp = asyncio.run(_ramp(url, server.base_url, steps, window_s, beyond, log))
    held = [s["sessions"] for s in ramp if s["passed"]]
    first_miss = next((s["sessions"] for s in ramp if not s["passed"]), None)
    return {
        "interval_s": INTERVAL_S,
        "p95_limit_ms": P95_LIMIT_MS,
        "window_s": window_s,
        "steps": ramp,
        # The largest step held before the first miss: a box that passes again past a miss is noise.
        "capacity_sessions": max((n for n in held if first_miss is None or n < first_miss), default=0),
    }


# -- 8. soak --------------------------------------------------------------------------------


class HealthProbe(threading.Thread):
    """GET /health every HEALTH_EVERY_S from its own thread (the client's event loop is busy)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(name="bench-health-probe", daemon=True)
        self.base_url = base_url
        self.latencies_ms: list[float] = []
        self.failures = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self._stop_event.wait(HEALTH_EVERY_S):
                started = time.perf_counter()
                try:
                    client.get("/health").raise_for_status()
                except httpx.HTTPError:
                    self.failures += 1
                    continue
                self.latencies_ms.append((time.perf_counter() - started) * 1000.0)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(15)


async def _soak(url: str, base_url: str, pid: int, sessions: int, seconds: float, log: Any) -> dict[str, Any]:
    crowd = Crowd(url, seed=8)
    probe = HealthProbe(base_url)
    rss: list[tuple[float, float]] = []
    probe.start()
    started = time.monotonic()
    try:
        await crowd.grow(sessions)
        while (elapsed := time.monotonic() - started) < seconds:
            rss.append((elapsed, tree_rss_mb(pid)))
            await asyncio.sleep(min(10.0, max(1.0, seconds / 60)))
        rss.append((time.monotonic() - started, tree_rss_mb(pid)))
        shed = await asyncio.to_thread(shed_counts, base_url)
        summary = crowd.window(started, time.monotonic())
        closed = crowd.closed_by_server()
        measured_s = time.monotonic() - started
    finally:
        await crowd.aclose()
        await asyncio.to_thread(probe.stop)
    baseline = next((mb for at, mb in rss if at >= seconds / 10), rss[0][1])
    health = probe.latencies_ms
    p50 = stats.percentile(health, 50) if health else None
    p99 = stats.percentile(health, 99) if health else None
    result = {
        "sessions": sessions,
        "seconds": round(measured_s, 1),
        **summary,
        "closed_by_server": closed,
        "shed": dict(shed),
        "rss_mb": {"start": round(rss[0][1], 1), "baseline": round(baseline, 1), "end": round(rss[-1][1], 1)},
        "rss_drift_pct": round((rss[-1][1] - baseline) / baseline * 100.0, 2) if baseline else None,
        "health_ms": stats.summary(health, (50, 99)),
        "health_failures": probe.failures,
        "event_loop_lag_p99_ms": round(p99 - p50, 1) if p50 is not None and p99 is not None else None,
    }
    log(
        f"  soak: {sessions} sessions for {result['seconds']} s: {result['turns']} turns,"
        f" {result['turns_failed']} failed, {closed} closed by the server, RSS drift"
        f" {result['rss_drift_pct']} %, /health p99 {result['health_ms']['p99']} ms"
    )
    return result


def soak(*, sessions: int, seconds: float, log: Any = print) -> dict[str, Any]:
    with hark_server(talkers_env()) as server:
        url = server.ws_base + "/v1/realtime?model=hark"
        return asyncio.run(_soak(url, server.base_url, server.pid, sessions, seconds, log))
