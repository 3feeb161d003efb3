"""The figures a bench run is judged by: the machine it ran on, the headline figures taken from
the scenarios' details (medians of the runs) and the targets they are checked against."""

from __future__ import annotations

import os
import platform
from typing import Any

SCRIPTED_RUNS = {
    "hark": "hark, speculation off",
    "hark_speculative": "hark default (speculative transcript and reply)",
    "pipecat": "Pipecat",
}
"""Runs of scenarios 1-2 and how the figures tables name them."""


def machine() -> dict[str, Any]:
    """CPU model and count (from /proc/cpuinfo), memory (from /proc/meminfo), OS and Python."""
    model, cores = None, os.cpu_count()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor() or "unknown",
        "cores": cores,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores,
        "memory_gib": memory_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def _pick(summary: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if not summary or summary.get("n", 0) == 0:
        return None
    return {k: summary.get(k) for k in keys}


def _check(value: float | None, limit: float, *, at_least: bool = False) -> bool | None:
    if value is None:
        return None
    return value >= limit if at_least else value <= limit


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it was met (None: not measured)."""
    o, p = result.get("overhead_ms") or {}, result.get("pipecat_overhead_ms") or {}
    b = result.get("bargein_ms") or {}
    v = result.get("local_voice_to_voice_ms") or {}
    s = result.get("speech_ttfb_ms") or {}
    k = result.get("soak") or {}
    fifth = round(p["p50"] / 5, 1) if p.get("p50") is not None else None
    ratio_met = None if fifth is None or o.get("p50") is None else o["p50"] <= fifth
    fakes = (result.get("scripted_voice_to_voice_ms") or {}).get("hark_speculative") or {}
    bargein_limit = (result.get("details", {}).get("bargein") or {}).get("target_ms", 116)
    spc = result.get("sessions_per_core")
    cpu = result.get("cpu_ms_per_session_second")
    mb = result.get("mb_per_session")
    rows = [
        ("overhead p50", o.get("p50"), "≤ 3 ms", _check(o.get("p50"), 3)),
        ("overhead p99", o.get("p99"), "≤ 10 ms", _check(o.get("p99"), 10)),
        ("overhead p50 vs Pipecat", o.get("p50"), f"≤ ⅕ of Pipecat's p50 ({fifth} ms)", ratio_met),
        ("sessions per core (Silero VAD)", spc, "≥ 200", _check(spc, 200, at_least=True)),
        ("CPU per session-second", cpu, "≤ 5 ms", _check(cpu, 5)),
        (
            "voice-to-voice with the fakes p50 (hark default)",
            fakes.get("p50"),
            "≤ 500 ms",
            _check(fakes.get("p50"), 500),
        ),
        ("memory per session", mb, "≤ 20 MB", _check(mb, 20)),
        (
            "barge-in (to last reply frame) p50",
            b.get("p50"),
            f"≤ {bargein_limit} ms (VAD start 96 ms + 20)",
            _check(b.get("p50"), bargein_limit),
        ),
        ("local voice-to-voice p50", v.get("p50"), "≤ 700 ms", _check(v.get("p50"), 700)),
        ("speech first byte p50", s.get("p50"), "≤ 100 ms", _check(s.get("p50"), 100)),
        (
            "soak: sessions closed by the server",
            k.get("closed_by_server"),
            "0",
            _check(k.get("closed_by_server"), 0),
        ),
        ("soak: RSS drift", k.get("rss_drift_pct"), "< 10 %", _check(k.get("rss_drift_pct"), 10)),
    ]
    return [{"figure": f, "value": val, "target": t, "met": met} for f, val, t, met in rows]


def _median_of_runs(framework: dict[str, Any], key: str) -> dict[str, Any] | None:
    """p50/p95/p99 of ``key``: the median over the runs when there were several (each run's
    figures in ``runs``), else over all the turns."""
    runs = (framework.get("runs") or {}).get(key) or {}
    if runs.get("runs", 0) > 1:
        return dict(runs["median"])
    return _pick(framework.get(key), ("p50", "p95", "p99"))


def _tail_causes(seen: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The stall probe over hark's overhead runs: the slowest 5 % of turns, and what overlapped them."""
    if not seen:
        return None
    keys = ("tail_turns", "tail_with_gc_pause", "tail_with_loop_stall_only", "tail_unexplained")
    out: dict[str, Any] = {k: sum(s["attribution"].get(k, 0) for s in seen) for k in keys}
    out["gc_pauses"] = sum(s["gc_pauses"] for s in seen)
    out["gc_ms_max"] = max(s["gc_ms_max"] for s in seen)
    lags = [s["loop_lag_ms"]["p99"] for s in seen if s["loop_lag_ms"]["p99"] is not None]
    out["loop_lag_p99_ms_max"] = max(lags) if lags else None
    return out


def headline(details: dict[str, Any]) -> dict[str, Any]:
    """The figures the issue names, from the scenarios' details."""
    out: dict[str, Any] = {}
    hark = (details.get("overhead") or {}).get("hark") or {}
    pipecat = (details.get("overhead") or {}).get("pipecat") or {}
    out["overhead_ms"] = _median_of_runs(hark, "overhead_ms")
    out["pipecat_overhead_ms"] = _median_of_runs(pipecat, "overhead_ms")
    out["overhead_spread_ms"] = {
        f"{name} {q}": spread["spread"][q]
        for name, row in (("hark", hark), ("pipecat", pipecat))
        if (spread := (row.get("runs") or {}).get("overhead_ms") or {}).get("runs", 0) > 1
        for q in ("p50", "p99")
    } or None
    if out["pipecat_overhead_ms"] is None:
        out["pipecat_unavailable"] = (details.get("overhead") or {}).get("errors", {}).get("pipecat")
    out["overhead_excluding_input_resampler_ms"] = _pick(
        hark.get("overhead_after_resampler_ms"), ("p50", "p95", "p99")
    )
    out["pipecat_overhead_excluding_input_resampler_ms"] = _pick(
        pipecat.get("overhead_after_resampler_ms"), ("p50", "p95", "p99")
    )
    out["server_overhead_ms"] = _pick(hark.get("server_overhead_ms"), ("p50", "p95", "p99"))
    o, p = out["overhead_ms"], out["pipecat_overhead_ms"]
    out["overhead_ratio_p50"] = round(o["p50"] / p["p50"], 3) if o and p and p["p50"] else None
    frameworks = {k: v for k, v in (details.get("overhead") or {}).items() if k in SCRIPTED_RUNS}
    out["scripted_voice_to_voice_ms"] = {
        name: _median_of_runs(frameworks[name], "voice_to_voice_ms")
        for name in SCRIPTED_RUNS
        if name in frameworks
    } or None
    out["overhead_tail_causes"] = _tail_causes(
        ((details.get("overhead") or {}).get("stalls") or {}).get("hark")
    )
    capacity = details.get("capacity") or {}
    out["sessions_per_core"] = capacity.get("sessions_per_core")
    out["capacity_spread"] = (
        {k: capacity.get(f"{k}_spread") for k in ("sessions_per_core", "cpu_ms_per_session_second")}
        if capacity.get("runs")
        else None
    )
    out["cpu_ms_per_session_second"] = capacity.get("cpu_ms_per_session_second")
    out["mb_per_session"] = capacity.get("mb_per_session")
    out["bargein_ms"] = _pick((details.get("bargein") or {}).get("bargein_ms"), ("p50", "p95", "p99"))
    local = (details.get("local") or {}).get("v2v") or {}
    first = local.get("workers") or local.get("in_process") or {}
    out["local_voice_to_voice_ms"] = _pick(first.get("voice_to_voice_ms"), ("p50", "p95"))
    out["local_voice_to_voice_by_mode_ms"] = {
        mode: _pick(row.get("voice_to_voice_ms"), ("p50", "p95")) for mode, row in local.items()
    } or None
    talkers = details.get("talkers") or {}
    out["talking_sessions_at_p95_1500ms"] = talkers.get("capacity_sessions")
    soak = details.get("soak") or {}
    out["soak"] = (
        {k: soak.get(k) for k in ("sessions", "seconds", "closed_by_server", "rss_drift_pct", "turns_failed")}
        | {
            "health_p99_ms": (soak.get("health_ms") or {}).get("p99"),
            "lag_p99_ms": soak.get("event_loop_lag_p99_ms"),
        }
        if soak and "error" not in soak
        else None
    )
    speech = (details.get("local") or {}).get("speech") or {}
    if speech:
        from hark.bench import stats

        p50s = [v["ttfb_ms"]["p50"] for v in speech.values() if v["ttfb_ms"]["p50"] is not None]
        out["speech_ttfb_ms"] = {
            "p50": round(stats.percentile(p50s, 50), 1) if p50s else None,
            "worst_format_p50": max(p50s) if p50s else None,
            "by_format": {fmt: _pick(v["ttfb_ms"], ("p50", "p95")) for fmt, v in speech.items()},
            "rtf_by_format": {fmt: v["rtf"]["p50"] for fmt, v in speech.items()},
        }
    else:
        out["speech_ttfb_ms"] = None
    return out
