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

SCENARIOS = ("overhead", "pipecat", "capacity", "bargein", "local", "speech")


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


FULL = Plan(320, 8, (10, 25, 50, 100, 150, 200, 300, 400, 600), 20.0, 40, 4, 20, 10)
QUICK = Plan(40, 5, (10, 25, 50, 100), 6.0, 6, 3, 4, 3)

METHOD = """
## Method

All figures are measured against a real `hark serve` process (a subprocess, started for each
scenario) driven over the real WebSocket by a client that streams 20 ms PCM frames at real-time
pace, as a microphone would: queued speech when there is some, silence otherwise. The speech is
espeak-ng saying "What is the weather like today?" (1.6 s), trimmed to the audible samples;
the Silero VAD is checked to hear it before a run. The client timestamps every frame it sends and
every message it receives on its monotonic clock. hark is driven over its Realtime protocol
(base64 PCM in JSON events), Pipecat over raw binary PCM: hark has no raw-PCM endpoint, so the
comparison charges hark for JSON and base64 that Pipecat does not pay.

**Fixed-delay fakes** (`hark.bench.fakes`, provider kind `scripted`): STT returns its text 0 or
150 ms after it is called (half the turns each); the LLM streams a two-sentence reply word by
word, the first token 200 ms after the call, then one every 20 ms; TTS delivers a sentence's
audio 100 ms after it is called. Workers are off (`HARK_WORKERS_ENABLED=false`) and the turn ends
after 300 ms of silence (`HARK_VAD_END_SILENCE_MS=300`).

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

What is left is the framework's: WebSocket both ways, JSON and base64, the input resampler's
buffering (24 → 16 kHz), VAD inference on the last chunk, turn logic, the hand-offs between
stages, the first audio chunk's encoding. `resampler_hold_ms` in the JSON splits out the
resampler's part; `server_overhead_ms` is the same from hark's own `hark.latency` event
(end of turn detected → first audio sent, less the scripted delays: no transport, no VAD).
Several sessions (8; 5 in `--quick`) run at once so turns gather faster; each turn is timed on
its own, and the client's lateness in sending frames is recorded as a check.

**2. Pipecat.** `pipecat-ai` 1.x with the same fakes as Pipecat services (`SegmentedSTTService`,
`LLMService`, `TTSService` subclasses), `VADProcessor` with Silero (threshold 0.5, start 96 ms,
stop 300 ms, no volume gate), the universal context aggregators with
`SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0)` (the turn ends when the VAD stopped
and the final transcript is in, as in hark), `FastAPIWebsocketTransport` with a raw-PCM
serializer, RTVI off, logging at WARNING (as hark's). Its VAD reports the chunk it stopped on, so
the same arithmetic applies. Same run, same client, same turns; the ratio is hark's p50 over
Pipecat's.

**3. Capacity.** One hark process pinned to core 0 (`sched_setaffinity`, as `taskset -c 0`), the
client on the other cores. Sessions are added in steps; every session streams audio all the
time and takes turns (speech, a ~3.7 s reply, a pause). At each step, over a window: overhead
per turn, playback underruns (reply audio arriving after the client's playback buffer, fed in
real time, ran dry), the server's CPU seconds per session-second (utime + stime from
`/proc/PID/stat`) and its resident memory (`VmRSS`); memory per session is the growth over the
idle server divided by the sessions. The ramp stops at overhead p99 > 50 ms or any underrun.
Sessions per core is the last step that passed. The client does not negotiate
permessage-deflate here (it cannot afford it for hundreds of sessions on one core); browsers do,
which costs the server more per frame. If the client falls behind (frame lateness p99 > 15 ms)
the ramp stops and the figure is the client's limit, flagged `limited_by: client`.

**4. Barge-in.** While a reply plays (0.3–1 s into it) the client speaks "Wait, stop." From the
frame holding the first interrupting sample: `bargein_ms` to the last reply audio frame received
(the issue's figure), `stop_signal_ms` to `input_audio_buffer.speech_started` (where a client
drops its buffered audio), `vad_ms` to the frame that completed the chunk on which the VAD
confirmed speech (96 ms of speech over the threshold), and `framework_ms` = stop signal − VAD.

**5. Local voice-to-voice.** The real engines (faster-whisper tiny.en, Piper `en_US-joe-medium`)
with the scripted LLM, one session, with the worker pool on (default) and off. Client-side, from
the end of the speech to the first reply audio, so it includes the 300 ms end-of-turn silence.

**6. `/v1/audio/speech`.** Piper, the two-sentence reply, each `response_format`: time to the
first body byte, and real-time factor (request time / audio duration).

Timing on a shared machine is noisy: other processes, CPU frequency changes and the client
sharing the cores all show up in the tails. For figures to quote, run on a quiet machine.
"""

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
    from hark.bench import bargein, capacity, local, overhead, report
    from hark.bench.audio import check_vad, utterance

    chosen = only if only else set(SCENARIOS)
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

    frameworks = tuple(f for f, key in (("hark", "overhead"), ("pipecat", "pipecat")) if key in chosen)
    if frameworks:
        log("1-2. overhead per turn")
        raw = overhead.run(
            turns=plan.overhead_turns,
            sessions=plan.overhead_sessions,
            speech=speech,
            frameworks=frameworks,
            log=log,
        )
        details["overhead"] = {
            **{name: overhead.summarise(turns) for name, turns in raw["turns"].items()},
            "turns": raw["turns"],
            "errors": raw["errors"],
        }
    if "capacity" in chosen:
        log("3. capacity on one core")
        try:
            details["capacity"] = capacity.run(
                steps=list(plan.capacity_steps), speech=speech, window_s=plan.capacity_window_s, log=log
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

    result: dict[str, Any] = {
        "version": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": quick,
        "scenarios": sorted(chosen),
        "seconds": None,
        "machine": report.machine(),
    }
    result.update(report.headline(details))
    result["details"] = details
    result["targets"] = report.targets(result)
    result["seconds"] = round(time.monotonic() - started, 1)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        log(f"wrote {json_path}")
    if docs_path is not None:
        for path in report.write_docs(result, docs_path, method=METHOD, default_log=DEFAULT_LOG):
            log(f"wrote {path}")
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
