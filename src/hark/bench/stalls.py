"""What the latency spikes were: the probe's GC pauses and event-loop lag set against the turns
(pure functions; the probe's events and the turns share the machine's monotonic clock)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hark.bench import stats

GC_MS = 1.0
"""A collection at least this long counts as a pause."""
LAG_MS = 5.0
"""Event-loop lag at least this long counts as a stall."""


def window(events: Sequence[Sequence[Any]], start: float, end: float) -> dict[str, Any]:
    """GC pauses and loop lag recorded between ``start`` and ``end``."""
    gcs = [e for e in events if e[0] == "gc" and start <= e[1] <= end]
    lags = [e[2] for e in events if e[0] == "lag" and start <= e[1] <= end]
    return {
        "gc_collections": len(gcs),
        "gc_pauses": sum(1 for e in gcs if e[2] >= GC_MS),
        "gc_ms_total": round(sum(e[2] for e in gcs), 1),
        "gc_ms_max": round(max((e[2] for e in gcs), default=0.0), 2),
        "gc_by_generation": {g: sum(1 for e in gcs if e[3] == g) for g in (0, 1, 2)},
        "loop_lag_ms": stats.summary(lags, (50, 99), digits=2),
        "loop_stalls": sum(1 for v in lags if v >= LAG_MS),
    }


def _inside(events: Sequence[Sequence[Any]], start: float, end: float) -> tuple[float, float]:
    """(longest GC pause, largest loop lag) that overlapped [start, end]."""
    gc_ms = max(
        (e[2] for e in events if e[0] == "gc" and e[1] <= end and e[1] + e[2] / 1000 >= start), default=0.0
    )
    lag_ms = max(
        (e[2] for e in events if e[0] == "lag" and e[1] <= end and e[1] + e[2] / 1000 >= start), default=0.0
    )
    return gc_ms, lag_ms


def attribute(
    turns: Sequence[dict[str, Any]], events: Sequence[Sequence[Any]], *, q: int = 95
) -> dict[str, Any]:
    """For the turns whose overhead is at or over its ``q``-th percentile (the tail): how many had
    a GC pause (≥ GC_MS) inside their window (decision frame sent → first reply audio received),
    how many only a loop stall (≥ LAG_MS), and how many neither (the VAD thread's round trip,
    the client, the kernel: not seen by the probe). Turns need ``decision_at`` and ``audio_at``."""
    timed = [t for t in turns if t.get("ok") and t.get("decision_at") and t.get("audio_at")]
    if not timed or not events:
        return {"tail_turns": 0}
    cut = stats.percentile([t["overhead_ms"] for t in timed], q)
    tail = [t for t in timed if t["overhead_ms"] >= cut]
    rest = [t for t in timed if t["overhead_ms"] < cut]
    gc_hits = lag_hits = 0
    for t in tail:
        gc_ms, lag_ms = _inside(events, t["decision_at"], t["audio_at"])
        gc_hits += gc_ms >= GC_MS
        lag_hits += gc_ms < GC_MS and lag_ms >= LAG_MS
    base_gc = sum(_inside(events, t["decision_at"], t["audio_at"])[0] >= GC_MS for t in rest)
    return {
        "tail_from_ms": round(cut, 1),
        "tail_turns": len(tail),
        "tail_with_gc_pause": gc_hits,
        "tail_with_loop_stall_only": lag_hits,
        "tail_unexplained": len(tail) - gc_hits - lag_hits,
        "other_turns_with_gc_pause": f"{base_gc}/{len(rest)}",
    }
