"""What a bench run leaves behind: the JSON, a markdown table, docs/benchmarks.md and its plots."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

METHOD = """
## Method

All figures are measured against a real `hark serve` process (a subprocess, started for each
scenario) driven over the real WebSocket by a client that streams 20 ms PCM frames at real-time
pace, as a microphone would: queued speech when there is some, silence otherwise. The speech is
espeak-ng saying "What is the weather like today?" (1.6 s), trimmed to the audible samples;
the Silero VAD is checked to hear it before a run. The client timestamps every frame it sends and
every message it receives on its monotonic clock. Overhead and capacity use the same wire format
for both frameworks: raw PCM16 in binary WebSocket frames, both ways. hark is driven over its
Realtime endpoint with `?audio=binary` (binary frames in, reply audio as binary frames out; its
other events stay JSON), Pipecat through a raw-PCM serializer. Barge-in and local voice-to-voice
use hark's default wire (base64 PCM in JSON events), as the OpenAI SDK and the web page do.

**Fixed-delay fakes** (`hark.bench.fakes`, provider kind `scripted`): STT returns its text 0 or
150 ms after it is called (half the turns each); the LLM streams a two-sentence reply word by
word, the first token 200 ms after the call, then one every 20 ms; TTS delivers a sentence's
audio 100 ms after it is called. Workers are off (`HARK_WORKERS_ENABLED=false`) and the turn ends
after 300 ms of silence (`HARK_VAD_END_SILENCE_MS=300`). For scenarios 1 and 3 hark's speculation
is off (`HARK_CONVERSATION_SPECULATIVE_TRANSCRIPT=false`, `..._REPLY=false`): by default hark
transcribes and starts the reply at the first 64 ms of silence, so the fakes' delays run during
the end-of-turn wait and the formula below would subtract time hark never spent. Overhead is
measured without it, like for like with Pipecat (which does not speculate); a third run with
hark's defaults gives the voice-to-voice a user gets (`scripted_voice_to_voice_ms`).

**1. Overhead per turn.** `overhead = voice-to-voice − end-of-turn wait − scripted delays`, per
turn, where

- voice-to-voice = first reply audio frame received − the frame holding the last audible
  sample sent;
- end-of-turn wait = the frame holding the last sample of the VAD chunk on which the server
  ended the turn sent − the same speech-end frame. hark reports where the trailing silence began
  (`speech_stopped.audio_end_ms`); the turn ends on the 9th silent 32 ms chunk after it
  (`round(300 / 32)`), and that chunk's last sample is in a known client frame. Until then no
  server could know the turn was over: this wait is the VAD's (Silero's fade after the last
  syllable plus the configured silence), not the framework's;
- scripted delays = STT (0 or 150 ms) + LLM to the token that lets a sentence splitter cut the
  first sentence (200 + 6 × 20 ms: "…today." is known to end a sentence only when " You"
  arrives; hark's and Pipecat's splitters both wait for it) + TTS 100 ms = 420 or 570 ms.

What is left is the framework's: WebSocket both ways, the input resampler's buffering (24 → 16
kHz; hark's causal FIR holds none back, so its part is 0), VAD inference on the last chunk, turn
logic, the hand-offs between stages, the first audio chunk's encoding. `resampler_hold_ms` in the
JSON splits out the resampler's part; `server_overhead_ms` is the same from hark's own
`hark.latency` event (end of turn detected → first audio sent, less the scripted delays: no
transport, no VAD). Several sessions (8; 5 in `--quick`) run at once so turns gather faster;
each turn is timed on its own, and the client's lateness in sending frames is recorded as a check.
The scenario runs three times (hark, hark with speculation and Pipecat in turn within each run,
so all three see the same load); each figure is the median of the three runs' figures, and the
spread is the smallest and largest of them.

**What the spikes are.** Every hark server the bench starts runs under a probe
(`python -m hark.bench.probe`): `gc.callbacks` time each collection, and a thread asks the event
loop every 10 ms to run a callback (`call_soon_threadsafe`) and records how late it ran (the
loop's lag: a long callback, a GC pause, or the loop waking late from its selector). Both are on
the machine's monotonic clock, so they are set against each turn's overhead window (decision
frame sent → first reply audio received): of the slowest 5 % of turns (1 % per capacity step),
how many overlapped a GC pause of ≥ 1 ms, how many only a loop stall of ≥ 5 ms, and how many
neither (then it was outside the event loop: the VAD thread's round trip, the client, the
kernel). Each capacity step also splits the server's CPU by thread (event loop, the Silero
thread, others).

**2. Pipecat.** `pipecat-ai` 1.x with the same fakes as Pipecat services (`SegmentedSTTService`,
`LLMService`, `TTSService` subclasses), `VADProcessor` with Silero (threshold 0.5, start 96 ms,
stop 300 ms, no volume gate), the universal context aggregators with
`SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0)` (the turn ends when the VAD stopped
and the final transcript is in, as in hark), `FastAPIWebsocketTransport` with a raw-PCM
serializer, RTVI off, logging at WARNING (as hark's). Its VAD reports the chunk it stopped on, so
the same arithmetic applies. Same run, same client, same turns; the ratio is hark's p50 over
Pipecat's.

**3. Capacity.** One hark process pinned to core 0 (`sched_setaffinity`, as `taskset -c 0`), the
client on the other cores, raw PCM both ways (`?audio=binary`). Sessions are added in steps;
every session streams audio all the time and takes turns (speech, a ~3.7 s reply, a pause). At
each step, over a window: overhead per turn, playback underruns (reply audio arriving after the
client's playback buffer, fed in real time, ran dry), the server's CPU seconds per
session-second (utime + stime from `/proc/PID/stat`) and its resident memory (`VmRSS`); memory
per session is the growth over the idle server divided by the sessions. A step fails at
overhead p99 > 50 ms or any underrun, and only when a second window at the same step fails
too (one GC pause must not decide the figure); the ramp stops at a failed step. Steps: 25, 50,
75, 100, 125, 150, 175, 200, 250, 300, 400, 500 (`--quick`: 25, 50, 100, 150, 200, 250), six
four seconds' settling and a 20 s window (`--quick`: 6 s). Sessions per core is the last step that
passed; the ramp runs three times on a fresh server each, and the figure is the median, with
the spread. The client
does not negotiate permessage-deflate here (it cannot afford it for hundreds of sessions on one
core); browsers do, which costs the server more per frame. If the client falls behind (frame
lateness p99 > 15 ms) the ramp stops and the figure is the client's limit, flagged `limited_by:
client`.

**4. Barge-in.** While a reply plays (0.3–1 s into it) the client speaks "Wait, stop." From the
frame holding the first interrupting sample: `bargein_ms` to the last reply audio frame received
(the issue's figure), `stop_signal_ms` to `input_audio_buffer.speech_started` (where a client
drops its buffered audio), `vad_ms` to the frame that completed the chunk on which the VAD
confirmed speech (96 ms of speech over the threshold), and `framework_ms` = stop signal − VAD.

**5. Local voice-to-voice.** The real engines (faster-whisper tiny.en, Piper `en_US-joe-medium`)
with the scripted LLM, one session, hark's defaults (speculative transcript and reply on), in
three configurations: the worker pool (default), in process, and the worker pool with Whisper's
full 30 s encoder window (`HARK_STT_ENCODER_WINDOW_S=0`; by default a short turn is encoded in
10 s).
Client-side, from the end of the speech to the first reply audio, so it includes the 300 ms
end-of-turn silence. The headline figure is the default configuration's.

**6. `/v1/audio/speech`.** Piper, the two-sentence reply, each `response_format`: time to the
first body byte, and real-time factor (request time / audio duration).

**7. Talking sessions (capacity with the real engines).** hark's defaults — faster-whisper
tiny.en and Piper in the worker pool (one worker per core), speculation on — with the scripted
LLM, and admission control off (`HARK_ADMISSION_MAX_CONVERSATIONS=0`, `..._MAX_WAIT_S=0`) so
the ramp can go past the point where hark would refuse. Sessions are added in steps (1, 2, 4,
6, 8, 10, 12, 16, 20, 24; `--quick`: 1, 4, 8). Every session streams 20 ms frames at real time
and speaks the question every ~7 s (uniformly 5.6–8.4 s after its previous turn began, or as
soon as the previous answer is in if that is later: people wait for an answer). After a 7 s
settling period, over a window (60 s; `--quick` 20 s): voice-to-voice per turn on the client
(last speech frame sent → first reply audio received, so the 300 ms end-of-turn silence is in
it) p50/p95, failed turns (no answer within 60 s, or not completed), sessions closed by the
server, and the work the pool shed in the window (`hark_worker_shed_total` by priority). The
**capacity** is the largest step before the first one that misses p95 ≤ 1.5 s (or fails a turn,
or loses a session); the ramp continues two steps past that miss, so the curve beyond shows how
the box degrades: partials and speculation are shed first, answers come later, nobody is
dropped. This is the number to set as `admission.max_conversations` ([deploy.md](deploy.md)).

**8. Soak** (only with `--only soak`: it takes 10 minutes). 20 sessions talking as in 7 for
600 s (`--quick`: 60 s), same server. Reported: sessions closed by the server (target 0), turns
answered and failed, voice-to-voice, resident memory of the server and its worker processes
(`VmRSS` summed; drift from the end of the first tenth of the run to the end, target < 10 %),
and `GET /health` latency polled every 200 ms from a separate thread — its p99 − p50 is the
server's event-loop lag (the bench client's own loop is busy with 20 sessions).

**9. Meetings** (`hark bench --only meetings`). Meetings of 2, 3, 4 and 5 espeak-ng voices
(`en-us`, `en+f3`, `en-us+m7`, `en-us+f4`, `en+m1`; one meeting per size in a quick run, three
in a full one), each with a one-word last turn and one turn that starts a second before the
previous one ends, streamed to `hark serve` with its default engines (CAM++ in the worker pool)
at 2x real time (quick) or real time (full). DER is frame-based (10 ms) with a 0.25 s collar
and the best mapping of labels to voices; with overlap, a frame where two voices speak counts
twice (hark gives one speaker per segment). Also the speaker-count error and the time from
`stop` to `final` per minute of audio. No recordings of real people are in the corpus.

Timing on a shared machine is noisy: other processes, CPU frequency changes and the client
sharing the cores all show up in the tails. For figures to quote, run on a quiet machine.
"""
"""How the figures are measured: the part of docs/benchmarks.md below the machine table."""

SCRIPTED_RUNS = {
    "hark": "hark, speculation off",
    "hark_speculative": "hark default (speculative transcript and reply)",
    "pipecat": "Pipecat",
}
"""Runs of scenarios 1-2 and how the figures tables name them."""
LOCAL_MODES = {
    "workers": "worker pool (default)",
    "in_process": "in process",
    "workers_window_30s": "worker pool, Whisper's full 30 s window",
}

SPEED_WORK_START = "<!-- speed-work:start -->"
SPEED_WORK_END = "<!-- speed-work:end -->"


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


def write_docs(result: dict[str, Any], path: Path, *, method: str, default_log: str) -> list[Path]:
    """Write ``path`` (method, machine, figures, targets) and its plots beside it; the speed-work
    log between its markers is kept from the previous version."""
    from hark.bench.wyoming_side import kept_section

    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    log = speed_work(previous) or default_log.strip()
    wyoming = kept_section(previous)  # `hark bench --only wyoming` writes it; other runs keep it
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

{wyoming}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(re.sub(r"\n{3,}", "\n\n", text), encoding="utf-8")
    return [path, *images]
