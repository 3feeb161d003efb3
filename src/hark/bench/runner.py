"""``hark bench``: run the scenarios, then write the JSON, the table and docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hark import __version__

SCENARIOS = (
    "overhead",
    "pipecat",
    "capacity",
    "bargein",
    "local",
    "speech",
    "talkers",
    "soak",
    "meetings",
    "wyoming",
    "turns",
    "phone",
    "webrtc",
    "ears",
)
DEFAULT_SCENARIOS = tuple(s for s in SCENARIOS if s != "soak")
"""What a run without ``--only`` measures: the soak (10 minutes of load) runs when asked for."""


@dataclass(frozen=True, slots=True)
class Plan:
    overhead_turns: int
    overhead_sessions: int
    capacity_steps: tuple[int, ...]
    capacity_window_s: float
    bargein_turns: int
    bargein_sessions: int
    local_turns: int
    speech_reps: int
    talkers_steps: tuple[int, ...] = (1, 2, 4, 6, 8, 10, 12, 16, 20, 24)
    talkers_window_s: float = 60.0
    soak_sessions: int = 20
    soak_s: float = 600.0
    repeats: int = 3
    """Runs of the overhead and capacity scenarios; their figures are the median of the runs."""


FULL = Plan(320, 8, (25, 50, 75, 100, 125, 150, 175, 200, 250, 300, 400, 500), 20.0, 40, 4, 20, 10)
QUICK = Plan(30, 5, (25, 50, 100, 150, 200, 250), 6.0, 6, 3, 4, 3, (1, 4, 8), 20.0, 20, 60.0)

DEFAULT_LOG = """
No speed work recorded yet. Record each change here as: what dominated (profile), the change,
and the figures before and after (same machine, same `hark bench` options).
"""


def run(
    *,
    quick: bool = False,
    only: set[str] | None = None,
    json_path: Path | None = None,
    docs_path: Path | None = None,
    log: Callable[[str], None] = print,
    plan: Plan | None = None,
) -> dict[str, Any]:
    from hark.bench import bargein, capacity, headline, local, meetings, overhead, report, talkers
    from hark.bench.audio import check_vad, utterance
    from hark.bench.method import METHOD

    chosen = only if only else set(DEFAULT_SCENARIOS)
    unknown = chosen - set(SCENARIOS)
    if unknown:
        raise ValueError(
            f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}"
        )
    plan = plan or (QUICK if quick else FULL)
    started = time.monotonic()
    speech = utterance()
    heard = check_vad(speech)
    log(f"hark bench{' --quick' if quick else ''}: speech from {speech.source}, {speech.duration_ms:.0f} ms")
    details: dict[str, Any] = {
        "speech": {"source": speech.source, "ms": round(speech.duration_ms), "vad_heard": round(heard, 3)}
    }

    runs = (("hark", "overhead"), ("hark_speculative", "overhead"), ("pipecat", "pipecat"))
    frameworks = tuple(f for f, key in runs if key in chosen)
    if frameworks:
        log("1-2. overhead per turn")
        raw = overhead.run(
            turns=plan.overhead_turns,
            sessions=plan.overhead_sessions,
            speech=speech,
            frameworks=frameworks,
            repeats=plan.repeats,
            log=log,
        )
        details["overhead"] = {
            **{name: overhead.summarise(turns) for name, turns in raw["turns"].items()},
            "turns": raw["turns"],
            "errors": raw["errors"],
            "stalls": raw["stalls"],
        }
    if "capacity" in chosen:
        log("3. capacity on one core")
        try:
            details["capacity"] = capacity.repeated(
                plan.repeats,
                steps=list(plan.capacity_steps),
                speech=speech,
                window_s=plan.capacity_window_s,
                log=log,
            )
        except Exception as exc:
            details["capacity"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "bargein" in chosen:
        log("4. barge-in")
        try:
            details["bargein"] = bargein.run(
                turns=plan.bargein_turns, sessions=plan.bargein_sessions, log=log
            )
        except Exception as exc:
            details["bargein"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "local" in chosen or "speech" in chosen:
        log("5-6. local engines: voice-to-voice and /v1/audio/speech")
        details["local"] = local.run(
            turns=plan.local_turns if "local" in chosen else 0,
            speech_reps=plan.speech_reps if "speech" in chosen else 0,
            modes=tuple(local.MODES) if "local" in chosen else ("workers",),
            log=log,
        )
    if "talkers" in chosen:
        log("7. capacity with the real local engines: talking sessions at voice-to-voice p95 <= 1.5 s")
        try:
            details["talkers"] = talkers.capacity(
                steps=list(plan.talkers_steps), window_s=plan.talkers_window_s, log=log
            )
        except Exception as exc:
            details["talkers"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "soak" in chosen:
        log(f"8. soak: {plan.soak_sessions} talking sessions for {plan.soak_s:g} s")
        try:
            details["soak"] = talkers.soak(sessions=plan.soak_sessions, seconds=plan.soak_s, log=log)
        except Exception as exc:
            details["soak"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "meetings" in chosen:
        log("9. meetings: diarisation of 2-5-speaker espeak-ng meetings")
        try:
            details["meetings"] = meetings.run(quick=quick, log=log)
        except Exception as exc:
            details["meetings"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "wyoming" in chosen:
        log("10. Wyoming: hark beside wyoming-faster-whisper and wyoming-piper")
        from hark.bench import wyoming_side

        try:
            details["wyoming"] = wyoming_side.run(log=log)
        except Exception as exc:
            details["wyoming"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "turns" in chosen:
        from hark.bench import turns

        log("11. turn-taking corpus (docs/turn-taking.md)")
        details["turns"] = turns.run(log=log)
        from hark.bench import turns_echo

        details["turns"]["echo"] = turns_echo.run(log=log)
        from hark.bench import turns_human

        details["turns"]["human"] = turns_human.run(log=log)
        from hark.bench import overlap

        try:
            details["turns"]["overlap"] = overlap.run(quick=quick, log=log)
        except Exception as exc:
            details["turns"]["overlap"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "phone" in chosen:
        from hark.bench import phone

        log("12. a phone call over Twilio Media Streams: greeting and voice-to-voice")
        try:
            details["phone"] = phone.run(calls=2 if quick else 3, turns=3 if quick else 5, log=log)
        except Exception as exc:
            details["phone"] = {"error": f"{type(exc).__name__}: {exc}"}

    if "webrtc" in chosen:
        from hark.bench import webrtc

        log("13. WebRTC beside WebSocket: voice-to-voice, barge-in, CPU per session-second")
        try:
            details["webrtc"] = webrtc.run(
                turns=3 if quick else 10, sessions=2 if quick else 4, seconds=5.0 if quick else 20.0, log=log
            )
        except Exception as exc:
            details["webrtc"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "ears" in chosen:
        from hark.bench import ears

        log("14. steady ears: the same words after shifted leading silences (tiny.en, base)")
        details["ears"] = ears.run(quick=quick, log=log)

    result: dict[str, Any] = {
        "version": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": quick,
        "scenarios": sorted(chosen),
        "seconds": None,
        "machine": headline.machine(),
    }
    result.update(headline.headline(details))
    result["details"] = details
    result["targets"] = headline.targets(result)
    result["seconds"] = round(time.monotonic() - started, 1)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        log(f"wrote {json_path}")
    if docs_path is not None and chosen - {"wyoming"}:
        for path in report.write_docs(result, docs_path, method=METHOD, default_log=DEFAULT_LOG):
            log(f"wrote {path}")
    if docs_path is not None and "error" not in details.get("wyoming", {"error": None}):
        from hark.bench import wyoming_side

        wyoming_side.write_section(docs_path, details["wyoming"], result["date"])
        log(f"wrote the Wyoming section of {docs_path}")
    log("")
    log(report.table(result))
    log("")
    log(report.figures_table(result))
    log(f"\n{result['seconds']} s")
    return result


def main(args: Any) -> int:
    only = {part.strip() for part in args.only.split(",") if part.strip()} if args.only else None
    docs = None if args.no_docs else Path(args.docs)
    try:
        run(
            quick=args.quick,
            only=only,
            json_path=Path(args.json) if args.json else None,
            docs_path=docs,
            log=lambda line: print(line, flush=True),
        )
    except ValueError as exc:
        print(f"hark bench: {exc}", file=sys.stderr)
        return 2
    return 0
