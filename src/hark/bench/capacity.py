"""Scenario 3: how many streaming sessions one hark process serves on one core.

The server is pinned to core 0 (``sched_setaffinity``, what ``taskset -c 0`` does) and the bench
client to the other cores. Sessions are added in steps; every session streams 20 ms frames at
real time and takes turns (speech, the scripted reply of ~3.7 s of audio, a pause). At each step,
over a measuring window: overhead per turn (as in scenario 1), playback underruns (reply audio
arriving after the client's playback buffer ran dry), the server's CPU seconds per
session-second and its resident memory. The ramp stops at the first step with overhead p99 over
50 ms or any underrun, or when the client itself falls behind (then the figure is the client's
limit, and says so); either needs two windows in a row at the same step: one spike decides
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import resource
import time
from dataclasses import asdict
from typing import Any

from hark.bench import probe, stalls, stats
from hark.bench.audio import Utterance, frames
from hark.bench.client import Session
from hark.bench.fakes import Script
from hark.bench.overhead import HARK_BINARY_PATH, hark_turn
from hark.bench.server import HarkServer, cpu_seconds, hark_server, rss_mb, scripted_env, thread_cpu

P99_LIMIT_MS = 50.0
CLIENT_LATE_MS = 15.0
MS_PER_CHAR = 60.0  # ~3.7 s of reply audio: long enough to be paced, so underruns can show


def underruns(session: Session, *, after: int = 0) -> int:
    """Reply audio that arrived after the client's playback buffer ran dry, within one reply.
    Only replies that began after event ``after`` count (a reply seen from its middle has no
    buffer to judge by). Replies follow one another, so only the last one with audio before
    ``after`` can go on past it: the scan covers the window, not the session's whole history."""
    count = 0
    by_response: dict[str, list[tuple[float, int]]] = {}
    events = session.events
    started_before = None
    for index in range(min(after, len(events)) - 1, -1, -1):
        if events[index].type == "audio":
            started_before = events[index].data.get("response_id")
            break
    for r in events[after:]:
        rid = r.data.get("response_id") if r.type == "audio" else None
        if rid and rid != started_before:
            by_response.setdefault(rid, []).append((r.at, r.data["bytes"]))
    for chunks in by_response.values():
        end = None
        for at, size in chunks:
            duration = size / 2 / 24_000
            if end is None:
                end = at + duration
            elif at > end + 0.005:
                count += 1
                end = at + duration
            else:
                end += duration
    return count


async def _ramp(
    url: str,
    steps: list[int],
    speech: Utterance,
    server: HarkServer,
    window_s: float,
    log: Any,
    compression: str | None = None,
) -> dict[str, Any]:
    pid = server.pid
    script = Script(stt_final_ms=0.0)
    rng = random.Random(3)
    sessions: list[Session] = []
    workers: list[asyncio.Task[None]] = []
    turns: list[tuple[float, Any]] = []
    stop = asyncio.Event()

    async def worker(session: Session) -> None:
        encoded = [session.encode(f) for f in frames(speech.pcm)]
        await asyncio.sleep(rng.uniform(0.2, 4.0))
        while not stop.is_set():
            turn = await hark_turn(session, encoded, script=script, end_silence_ms=300)
            turns.append((time.monotonic(), turn))
            if session.error:
                return
            await asyncio.sleep(rng.uniform(0.3, 1.5))

    await asyncio.sleep(1.0)
    baseline_rss = rss_mb(pid)
    results: list[dict[str, Any]] = []
    watch = GCWatch()
    # What the client holds from before (other scenarios, earlier steps) is never garbage the
    # collector needs to look at again: frozen, a full collection does not walk it while the
    # client should be sending frames.
    gc.freeze()
    try:
        for target in steps:
            while len(sessions) < target:
                session = Session(url, wire="binary", compression=compression)
                await session.start()
                sessions.append(session)
                workers.append(asyncio.create_task(worker(session)))
            await asyncio.sleep(4.0)  # let the new sessions settle into their turns
            step = await _window(target, sessions, turns, server, window_s, baseline_rss, watch)
            if not step["passed"] or step["client_bound"]:
                # One spike decides nothing, the server's or the client's: a step fails only when
                # a second window fails too. A second apart, so that the first window's arithmetic
                # (which holds the client's loop) is not in it.
                await asyncio.sleep(1.0)
                again = await _window(target, sessions, turns, server, window_s, baseline_rss, watch)
                again["first_window"] = step
                step = again
            results.append(step)
            gc.freeze()
            log(f"  {target} sessions: {_line(step)}")
            if not step["passed"] or step["client_bound"]:
                break
    finally:
        watch.remove()
        gc.unfreeze()
        stop.set()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return {"baseline_rss_mb": round(baseline_rss, 1), "steps": results}


def _line(step: dict[str, Any]) -> str:
    first = step.get("first_window")
    again = ""
    if first is not None:
        why = "client fell behind" if first["client_bound"] else "failed"
        again = f" (second window: the first {why})"
    return (
        f"overhead p50 {step['overhead_ms']['p50']} p99 {step['overhead_ms']['p99']} ms, underruns "
        f"{step['underruns']}, {step['cpu_ms_per_session_second']} ms CPU per session-second, "
        f"{step['rss_mb']} MB, GC pauses {step['stalls']['gc_pauses']}, loop stalls "
        f"{step['stalls']['loop_stalls']}; client: {step['client_cpu_busy']} of a core, lateness p99 "
        f"{step['client_lateness_ms']['p99']} ms, GC max {step['client_gc']['gc_ms_max']} ms"
        + (" (client fell behind)" if step["client_bound"] else "")
        + again
    )


class GCWatch:
    """The bench client's own garbage-collector pauses (``gc.callbacks``), in the stall probe's
    format, so a window where the client fell behind can say whether its collector was why."""

    def __init__(self) -> None:
        self.events: list[list[Any]] = []
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._started = now
        else:
            self.events.append(["gc", self._started, (now - self._started) * 1000.0, info["generation"]])

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _window(
    target: int,
    sessions: list[Session],
    turns: list[tuple[float, Any]],
    server: HarkServer,
    window_s: float,
    baseline_rss: float,
    watch: GCWatch,
) -> dict[str, Any]:
    """One measuring window at ``target`` sessions: overhead, underruns, CPU (by thread), memory,
    what the stall probe saw in it, and the client's own CPU, lateness and GC pauses."""
    pid = server.pid
    marks = [s.mark() for s in sessions]
    late_marks = [len(s.lateness_ms) for s in sessions]
    client0 = _client_cpu()
    cpu0, threads0, t0 = cpu_seconds(pid), thread_cpu(pid), time.monotonic()
    await asyncio.sleep(window_s)
    cpu1, threads1, t1 = cpu_seconds(pid), thread_cpu(pid), time.monotonic()
    client1 = _client_cpu()
    rss = rss_mb(pid)
    window = [t for at, t in turns if t0 <= at <= t1]
    ok = [t.overhead_ms for t in window if t.ok and t.overhead_ms is not None]
    lateness = [v for s, m in zip(sessions, late_marks, strict=True) for v in s.lateness_ms[m:]]
    await asyncio.sleep(probe.FLUSH_S + 0.1)  # the probe writes every half second
    events = server.stalls()
    busy = {tid: threads1[tid] - threads0.get(tid, 0.0) for tid in threads1}
    total = sum(busy.values()) or 1.0
    top = sorted(busy.items(), key=lambda kv: -kv[1])[:3]
    step: dict[str, Any] = {
        "sessions": target,
        "turns": len(window),
        "turns_failed": sum(1 for t in window if not t.ok),
        "overhead_ms": stats.summary(ok),
        "underruns": sum(underruns(s, after=m) for s, m in zip(sessions, marks, strict=True)),
        "cpu_ms_per_session_second": round((cpu1 - cpu0) * 1000.0 / (target * (t1 - t0)), 2),
        "cpu_busy": round((cpu1 - cpu0) / (t1 - t0), 3),
        "cpu_by_thread": [
            {"thread": "event loop" if tid == pid else f"thread {tid}", "share": round(v / total, 3)}
            for tid, v in top
        ],
        "rss_mb": round(rss, 1),
        "mb_per_session": round((rss - baseline_rss) / target, 3),
        "client_lateness_ms": stats.summary(lateness, (50, 99)),
        "client_cpu_busy": round((client1 - client0) / (t1 - t0), 3),
        "client_gc": {k: v for k, v in stalls.window(watch.events, t0, t1).items() if k.startswith("gc_")},
        "errors": sorted({s.error for s in sessions if s.error})[:3],
        "stalls": stalls.window(events, t0, t1),
        "tail": stalls.attribute([asdict(t) for t in window], events, q=99),
    }
    p99 = step["overhead_ms"]["p99"]
    step["client_bound"] = (step["client_lateness_ms"]["p99"] or 0.0) > CLIENT_LATE_MS
    step["passed"] = bool(
        ok and p99 is not None and p99 <= P99_LIMIT_MS and step["underruns"] == 0 and not step["errors"]
    )
    return step


def repeated(
    runs: int, *, steps: list[int], speech: Utterance, window_s: float, log: Any = print
) -> dict[str, Any]:
    """``runs`` ramps, each on a fresh server: the figures are their median, with the spread."""
    done = []
    for index in range(runs):
        log(f"  run {index + 1} of {runs}")
        done.append(run(steps=steps, speech=speech, window_s=window_s, log=log))
    fields = ("sessions_per_core", "cpu_ms_per_session_second", "mb_per_session")
    out: dict[str, Any] = {"runs": done}
    for field in fields:
        values = [r[field] for r in done if r.get(field) is not None]
        out[field] = stats.percentile(values, 50) if values else None
        out[f"{field}_spread"] = [min(values), max(values)] if values else None
    if out["sessions_per_core"] is not None:
        out["sessions_per_core"] = int(out["sessions_per_core"])
    out["limited_by"] = [r.get("limited_by") for r in done]
    return out


def limited_by(last: dict[str, Any] | None) -> str | None:
    """What ended a ramp, from its last step: the client (it fell behind, so the server's figures
    in that window are not the server's alone), the server, or the steps (every one passed)."""
    if last is None:
        return None
    if last["client_bound"]:
        return "client"
    return "server" if not last["passed"] else "steps"


def run(
    *,
    steps: list[int],
    speech: Utterance,
    window_s: float,
    log: Any = print,
    compression: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One ramp on a fresh server. ``compression="deflate"`` has every session offer
    permessage-deflate, as the OpenAI SDK's clients do, and the server accept it
    (``server.websocket_compression``, off by default); ``env`` adds to the server's environment."""
    cores = sorted(os.sched_getaffinity(0))
    server_cpu = {cores[0]}
    client_cpu = set(cores[1:]) or set(cores)
    accept = {"HARK_SERVER_WEBSOCKET_COMPRESSION": "true"} if compression else {}
    env = scripted_env(tts_ms_per_char=MS_PER_CHAR) | accept | (env or {})
    original = os.sched_getaffinity(0)
    os.sched_setaffinity(0, client_cpu)
    try:
        with hark_server(env, cpu=server_cpu) as server:
            url = server.ws_base + HARK_BINARY_PATH
            ramp = asyncio.run(_ramp(url, steps, speech, server, window_s, log, compression))
    finally:
        os.sched_setaffinity(0, original)
    passed = [s for s in ramp["steps"] if s["passed"]]
    best = passed[-1] if passed else None
    last = ramp["steps"][-1] if ramp["steps"] else None
    cpu_ms = best["cpu_ms_per_session_second"] if best else None
    return {
        "server_cpu": sorted(server_cpu),
        "client_cpu": sorted(client_cpu),
        "window_s": window_s,
        "compression": compression,
        **ramp,
        "sessions_per_core": best["sessions"] if best else 0,
        "limited_by": limited_by(last),
        "cpu_ms_per_session_second": cpu_ms,
        "sessions_per_core_by_cpu": round(1000.0 / cpu_ms) if cpu_ms else None,
        "mb_per_session": best["mb_per_session"] if best else None,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m hark.bench.capacity --steps 150 --window 20``: one ramp, its steps' figures as
    JSON (CPU per session-second by thread, the client's own CPU and lateness): the quick way to
    compare a change, B A B A, without the rest of the bench."""
    import argparse
    import json

    from hark.bench.audio import utterance

    parser = argparse.ArgumentParser(prog="python -m hark.bench.capacity")
    parser.add_argument("--steps", default="150", help="sessions at each step, comma-separated")
    parser.add_argument("--window", type=float, default=20.0, help="seconds per measuring window")
    parser.add_argument(
        "--compression",
        choices=("none", "deflate"),
        default="none",
        help="every session offers permessage-deflate, as OpenAI SDK clients do, and the server accepts it",
    )
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")]
    compression = None if args.compression == "none" else args.compression
    result = run(steps=steps, speech=utterance(), window_s=args.window, compression=compression)
    keep = ("sessions", "turns", "cpu_ms_per_session_second", "cpu_busy", "cpu_by_thread",
            "overhead_ms", "underruns", "client_cpu_busy", "client_lateness_ms", "client_gc",
            "client_bound", "passed")  # fmt: skip
    gc_keys = ("gc_collections", "gc_ms_max", "gc_ms_total", "gc_by_generation")
    brief = [
        {k: step.get(k) for k in keep} | {"server_gc": {k: step["stalls"].get(k) for k in gc_keys}}
        for step in result["steps"]
    ]
    print(json.dumps({"limited_by": result["limited_by"], "steps": brief}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
