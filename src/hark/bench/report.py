"""What a bench run leaves behind: the markdown tables, docs/benchmarks.md and its plots (the
figures themselves: headline.py; the Method text: method.py)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hark.bench.headline import SCRIPTED_RUNS

LOCAL_MODES = {
    "workers": "worker pool (default)",
    "in_process": "in process",
    "workers_window_30s": "worker pool, Whisper's full 30 s window",
}

SPEED_WORK_START = "<!-- speed-work:start -->"
SPEED_WORK_END = "<!-- speed-work:end -->"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items() if not isinstance(v, dict))
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list) and len(value) == 2:
        return f"{_fmt(value[0])}–{_fmt(value[1])}"
    return str(value)


def table(result: dict[str, Any]) -> str:
    lines = ["| figure | measured | target | met |", "|---|---|---|---|"]
    for row in result["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        lines.append(f"| {row['figure']} | {_fmt(row['value'])} | {row['target']} | {met} |")
    return "\n".join(lines)


def figures_table(result: dict[str, Any]) -> str:
    keys = [
        ("overhead_ms", "hark overhead per turn (ms)"),
        ("pipecat_overhead_ms", "Pipecat overhead per turn (ms)"),
        ("overhead_ratio_p50", "hark p50 / Pipecat p50"),
        ("overhead_excluding_input_resampler_ms", "hark overhead less the input resampler's hold (ms)"),
        ("pipecat_overhead_excluding_input_resampler_ms", "Pipecat overhead less its resampler's hold (ms)"),
        ("server_overhead_ms", "hark server-side overhead, from hark.latency (ms)"),
        ("overhead_spread_ms", "overhead per turn, spread over the runs (min–max of each run's figure)"),
        ("overhead_tail_causes", "hark's slowest 5 % of turns: what the stall probe saw in them"),
        ("capacity_spread", "capacity, spread over the runs"),
        ("sessions_per_core", "sessions per core"),
        ("cpu_ms_per_session_second", "CPU ms per session-second"),
        ("mb_per_session", "MB per session"),
        ("bargein_ms", "barge-in (ms)"),
        ("local_voice_to_voice_ms", "local voice-to-voice (ms)"),
        (
            "talking_sessions_at_p95_1500ms",
            "talking sessions held at voice-to-voice p95 ≤ 1.5 s (real engines)",
        ),
        ("soak", "soak"),
    ]
    lines = ["| figure | value |", "|---|---|"]
    for key, label in keys:
        lines.append(f"| {label} | {_fmt(result.get(key))} |")
    for name, row in (result.get("scripted_voice_to_voice_ms") or {}).items():
        lines.append(f"| voice-to-voice with the fakes, {SCRIPTED_RUNS[name]} (ms) | {_fmt(row)} |")
    for mode, row in (result.get("local_voice_to_voice_by_mode_ms") or {}).items():
        lines.append(f"| local voice-to-voice, {LOCAL_MODES.get(mode, mode)} (ms) | {_fmt(row)} |")
    for step in (result.get("details", {}).get("talkers") or {}).get("steps") or []:
        v = step["voice_to_voice_ms"]
        lines.append(
            f"| {step['sessions']} talking sessions: voice-to-voice (ms) | p50 {_fmt(v['p50'])}, "
            f"p95 {_fmt(v['p95'])}; {step['turns_failed']} of {step['turns']} turns failed; "
            f"shed {_fmt(step['shed'])} |"
        )
    speech = result.get("speech_ttfb_ms") or {}
    for fmt, row in (speech.get("by_format") or {}).items():
        rtf = (speech.get("rtf_by_format") or {}).get(fmt)
        lines.append(f"| speech first byte, {fmt} (ms) | {_fmt(row)}; RTF {_fmt(rtf)} |")
    return "\n".join(lines)


def meetings_section(result: dict[str, Any]) -> str:
    """Scenario 7 (meetings), when it ran."""
    details = (result.get("details") or {}).get("meetings")
    if not details:
        return ""
    if "error" in details:
        return f"## Meetings: who spoke when\n\nThe meetings scenario failed: {details['error']}\n"
    from hark.bench import meetings

    return "## Meetings: who spoke when\n\n" + meetings.table(details) + "\n"


def plots(result: dict[str, Any], directory: Path) -> list[Path]:
    """PNG histograms of the latency distributions (matplotlib, imported only here)."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    details = result["details"]
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = directory / name
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    turns = (details.get("overhead") or {}).get("turns") or {}
    if turns:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
        for name, rows in turns.items():
            ok = [t for t in rows if t["ok"]]
            if ok:
                if name != "hark_speculative":  # its fakes run during the VAD wait: no overhead
                    label = f"{name} (n={len(ok)})"
                    left.hist([t["overhead_ms"] for t in ok], bins=40, alpha=0.6, label=label)
                right.hist([t["voice_to_voice_ms"] for t in ok], bins=40, alpha=0.6, label=name)
        left.set(title="Framework overhead per turn", xlabel="ms")
        right.set(title="Voice-to-voice with the fakes (incl. VAD wait)", xlabel="ms")
        left.legend()
        right.legend()
        save(fig, "overhead.png")
    capacity = details.get("capacity") or {}
    steps = capacity.get("steps") or []
    if steps:
        fig, left = plt.subplots(figsize=(6, 3.6))
        n = [s["sessions"] for s in steps]
        left.plot(n, [s["overhead_ms"]["p99"] for s in steps], "o-", label="overhead p99 (ms)")
        left.plot(n, [s["cpu_ms_per_session_second"] for s in steps], "s-", label="CPU ms / session-second")
        left.axhline(50, color="grey", linestyle=":", linewidth=1)
        left.set(title="One core: sessions vs overhead and CPU", xlabel="concurrent sessions")
        left.legend()
        save(fig, "capacity.png")
    bargein = details.get("bargein") or {}
    ok = [t for t in bargein.get("turns", []) if t.get("ok")]
    if ok:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for key in ("vad_ms", "stop_signal_ms", "bargein_ms"):
            ax.hist([t[key] for t in ok], bins=20, alpha=0.6, label=key)
        ax.set(title="Barge-in, from the first interrupting sample", xlabel="ms")
        ax.legend()
        save(fig, "bargein.png")
    local = (details.get("local") or {}).get("turns") or {}
    if local:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for name, values in local.items():
            if values:
                ax.hist(values, bins=15, alpha=0.6, label=name)
        ax.set(title="Local voice-to-voice (tiny.en, Piper, fake LLM)", xlabel="ms")
        ax.legend()
        save(fig, "local_v2v.png")
    steps = (details.get("talkers") or {}).get("steps") or []
    if steps:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        n = [s["sessions"] for s in steps]
        for key in ("p50", "p95"):
            ax.plot(n, [s["voice_to_voice_ms"][key] for s in steps], "o-", label=f"voice-to-voice {key} (ms)")
        ax.axhline(1500, color="grey", linestyle=":", linewidth=1)
        ax.set(title="Talking sessions (a turn every ~7 s), real engines", xlabel="concurrent sessions")
        ax.legend()
        save(fig, "talkers.png")
    return written


def speed_work(existing: str) -> str:
    """The speed-work log from an existing docs/benchmarks.md (kept across runs)."""
    match = re.search(re.escape(SPEED_WORK_START) + r"(.*?)" + re.escape(SPEED_WORK_END), existing, re.S)
    return match.group(1).strip() if match else ""


MARKED_SECTION = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->", re.S)
"""A section a run does not write (``<!-- NAME:start -->`` … ``<!-- NAME:end -->``): written by
hand or by a run of one part (`hark bench --only wyoming`)."""


def kept_sections(existing: str) -> str:
    """What follows the speed-work log in an existing docs/benchmarks.md, as it stands (every
    section there is kept by hand or by its own run), and any marked section found elsewhere."""
    _, marker, tail = existing.partition(SPEED_WORK_END)
    kept = tail.strip() if marker else ""
    for match in MARKED_SECTION.finditer(existing):
        if match.group(1) != "speed-work" and match.group(0) not in kept:
            kept = f"{kept}\n\n{match.group(0)}".strip()
    return kept


def write_docs(result: dict[str, Any], path: Path, *, method: str, default_log: str) -> list[Path]:
    """Write ``path`` (method, machine, figures, targets) and its plots beside it; the speed-work
    log and every section after it are kept from the previous version."""
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    log = speed_work(previous) or default_log.strip()
    kept = kept_sections(previous)
    images = plots(result, path.parent / "benchmarks")
    m = result["machine"]
    rel: Callable[[Path], str] = lambda p: os.path.relpath(p, path.parent)  # noqa: E731
    quick = " --quick" if result["quick"] else ""
    caveat = "**Quick run**: fewer turns and capacity steps than a full run; treat the tails as rough."
    text = f"""# Benchmarks

Generated by `hark bench{quick}` on {result["date"]} (hark {result["version"]}).
Rerun with `make bench` (or `hark bench --json bench.json`); `hark bench --quick` takes
about fifteen minutes (overhead and capacity run three times each).
Everything above the speed-work log is rewritten by each run.

## Latest figures

{caveat if result["quick"] else ""}
{result.get("note") or ""}

{table(result)}

{figures_table(result)}

{"".join(f"![{p.stem}]({rel(p)})" + chr(10) + chr(10) for p in images)}
{meetings_section(result)}
## Machine

| | |
|---|---|
| CPU | {m["cpu"]} |
| cores | {m["cores"]} (usable: {m["usable_cores"]}) |
| memory | {m["memory_gib"]} GiB |
| OS, Python | {m["os"]}, Python {m["python"]} |
| load average at the start | {_fmt(m["load_average"])} |

{method.strip()}

## Speed work

{SPEED_WORK_START}
{log}
{SPEED_WORK_END}

{kept}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(re.sub(r"\n{3,}", "\n\n", text), encoding="utf-8")
    return [path, *images]
