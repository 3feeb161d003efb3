"""Scenarios 1 and 2: framework overhead per turn, hark and Pipecat, with the same fakes.

Each session streams 20 ms frames at real-time pace; a turn is a random 0.3-0.8 s of silence,
the bench speech, then silence until the reply is over. Several sessions run at once to gather
turns faster; each turn is still measured on its own (see ``stats`` for the arithmetic).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from hark.bench import probe, stalls, stats
from hark.bench.audio import Utterance, frames
from hark.bench.client import HARK_WIRES, Received, Session, resampled_table
from hark.bench.fakes import Script, scripted_first_audio_ms
from hark.bench.server import HarkServer, ServerProcess, hark_server, scripted_env

TURN_TIMEOUT_S = 20.0
HARK_BINARY_PATH = "/v1/realtime?model=hark&audio=binary&hark_events=1"
"""hark's Realtime endpoint with raw PCM both ways: the wire format Pipecat is driven with."""


@dataclass(slots=True)
class Turn:
    framework: str
    stt_final_ms: float
    ok: bool
    error: str | None = None
    overhead_ms: float | None = None
    voice_to_voice_ms: float | None = None
    end_of_turn_wait_ms: float | None = None
    scripted_ms: float | None = None
    server_overhead_ms: float | None = None
    server: dict[str, float | None] | None = None
    """hark's own ``hark.latency`` figures for the turn."""
    send_lateness_ms: float | None = None
    """How late (worst case) the client sent the frames of this turn: a check on the client."""
    resampler_hold_ms: float | None = None
    """From the frame holding the decisive chunk's last sample to the frame after which the
    server's input resampler had put it out (part of the overhead)."""
    decision_at: float | None = None
    audio_at: float | None = None
    """The turn's overhead window on the client's monotonic clock: the decision frame sent, the
    first reply audio received (the stall probe's events are set against it)."""
    run: int = 0


def _late(session: Session, first: int, last: int) -> float:
    window = session.lateness_ms[first : last + 1]
    return round(max(window), 1) if window else 0.0


async def hark_turn(
    session: Session, speech: list[str | bytes], *, script: Script, end_silence_ms: float
) -> Turn:
    scripted = scripted_first_audio_ms(script)
    turn = Turn("hark", script.stt_final_ms, ok=False, scripted_ms=scripted)
    mark = session.mark()
    first, last = session.enqueue(speech)
    try:
        stopped = await session.wait_for(
            "input_audio_buffer.speech_stopped", after=mark, limit_s=TURN_TIMEOUT_S
        )
        created = await session.wait_for("response.created", after=mark, limit_s=TURN_TIMEOUT_S)
        rid = created.data["response"]["id"]

        def mine(r: Received) -> bool:
            return bool(r.data.get("response_id") == rid)

        audio = await session.wait_for("audio", mine, after=mark, limit_s=TURN_TIMEOUT_S)
        latency = await session.wait_for("hark.latency", mine, after=mark, limit_s=TURN_TIMEOUT_S)
        await session.wait_for(
            "response.done", lambda r: r.data["response"]["id"] == rid, after=mark, limit_s=TURN_TIMEOUT_S
        )
    except (TimeoutError, ConnectionError, KeyError) as exc:
        turn.error = f"{type(exc).__name__}: {exc}"
        return turn
    chunk = stats.decision_chunk(int(stopped.data["audio_end_ms"]), end_silence_ms)
    decision = stats.position_frame(chunk)
    if decision < last:
        turn.error = "the VAD ended the turn inside the speech"
        return turn
    released = stats.completing_frame(resampled_table(decision + 8), chunk)
    _measure(
        turn,
        session,
        scripted,
        first=first,
        last=last,
        decision=decision,
        released=released,
        audio_at=audio.at,
    )
    server = {
        k: latency.data.get(k)
        for k in ("end_of_turn_ms", "stt_ms", "llm_ttft_ms", "tts_ttfb_ms", "voice_to_voice_ms")
    }
    turn.server = server
    v2v, eot = server["voice_to_voice_ms"], server["end_of_turn_ms"]
    if v2v is not None and eot is not None:
        turn.server_overhead_ms = round(stats.server_overhead_ms(v2v, eot, scripted), 2)
    return turn


async def pipecat_turn(session: Session, speech: list[str | bytes], *, script: Script) -> Turn:
    scripted = scripted_first_audio_ms(script)
    turn = Turn("pipecat", script.stt_final_ms, ok=False, scripted_ms=scripted)
    mark = session.mark()
    first, last = session.enqueue(speech)
    try:
        stop = await session.wait_for("vad_stop", after=mark, limit_s=TURN_TIMEOUT_S)
        after_stop = session.events.index(stop)
        audio = await session.wait_for("audio", after=after_stop, limit_s=TURN_TIMEOUT_S)
        await _quiet(session, 0.5)
    except (TimeoutError, ConnectionError) as exc:
        turn.error = f"{type(exc).__name__}: {exc}"
        return turn
    decision = stats.position_frame(int(stop.data["chunk"]))
    if decision < last:
        turn.error = "the VAD ended the turn inside the speech"
        return turn
    released = int(stop.data["frame"])
    _measure(
        turn,
        session,
        scripted,
        first=first,
        last=last,
        decision=decision,
        released=released,
        audio_at=audio.at,
    )
    return turn


def _measure(
    turn: Turn,
    session: Session,
    scripted: float,
    *,
    first: int,
    last: int,
    decision: int,
    released: int,
    audio_at: float,
) -> None:
    """The client-side figures of a turn that ended after its speech (both frameworks alike):
    frames ``first``..``last`` held the speech, ``decision`` the VAD chunk that ended the turn,
    ``released`` the frame that let the input resampler put that chunk out."""
    sent = session.sent_at
    turn.resampler_hold_ms = round((sent[released] - sent[decision]) * 1000.0, 2)
    times = stats.TurnTimes(sent[last], sent[decision], audio_at, scripted)
    turn.ok = True
    turn.overhead_ms = round(times.overhead_ms, 2)
    turn.voice_to_voice_ms = round(times.voice_to_voice_ms, 2)
    turn.end_of_turn_wait_ms = round(times.end_of_turn_wait_ms, 2)
    turn.send_lateness_ms = _late(session, first, decision)
    turn.decision_at, turn.audio_at = sent[decision], audio_at


async def _quiet(session: Session, seconds: float, *, limit: float = 20.0) -> None:
    """Wait until no audio has arrived for ``seconds`` (the raw wire has no response.done)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        audio = session.find("audio")
        last = audio[-1].at if audio else 0.0
        idle = time.monotonic() - last
        if idle >= seconds:
            return
        await asyncio.sleep(seconds - idle)


async def drive(
    url: str,
    *,
    wire: str,
    sessions: int,
    turns: int,
    speech: Utterance,
    script: Script,
    end_silence_ms: float,
    seed: int = 1,
) -> list[Turn]:
    """``turns`` turns spread over ``sessions`` concurrent sessions."""
    rng = random.Random(seed)
    results: list[Turn] = []
    remaining = turns
    opened: list[Session] = []

    async def worker(index: int) -> None:
        nonlocal remaining
        session = Session(url, wire=wire)
        opened.append(session)
        await session.start(ready_event="session.created" if wire in HARK_WIRES else None)
        speech_frames = [session.encode(f) for f in frames(speech.pcm)]
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        while remaining > 0:
            remaining -= 1
            if wire in HARK_WIRES:
                turn = await hark_turn(session, speech_frames, script=script, end_silence_ms=end_silence_ms)
            else:
                turn = await pipecat_turn(session, speech_frames, script=script)
            results.append(turn)
            if session.error:
                break
            await asyncio.sleep(rng.uniform(0.3, 0.8))

    try:
        await asyncio.gather(*(worker(i) for i in range(sessions)))
    finally:
        await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)
    return results


def pipecat_server(script: Script, *, end_silence_ms: float, tts_ms_per_char: float) -> ServerProcess:
    command = [
        sys.executable, "-m", "hark.bench.pipecat_side", "--port", "{port}",
        "--stt-final-ms", str(script.stt_final_ms),
        "--llm-first-token-ms", str(script.llm_first_token_ms),
        "--llm-token-ms", str(script.llm_token_ms),
        "--tts-first-audio-ms", str(script.tts_first_audio_ms),
        "--tts-ms-per-char", str(tts_ms_per_char),
        "--end-silence-ms", str(end_silence_ms),
        "--precise",
    ]  # fmt: skip
    return ServerProcess(command, env={"PIPECAT_ALLOWED_ORIGINS": ""})


def pipecat_available() -> str | None:
    """None when Pipecat is installed; else why not (it is imported only in its own server)."""
    import importlib.util

    if importlib.util.find_spec("pipecat") is None:
        return "pipecat-ai is not installed: pip install 'hark[bench]'"
    return None


def run(
    *,
    turns: int,
    sessions: int,
    speech: Utterance,
    stt_delays: tuple[float, ...] = (0.0, 150.0),
    end_silence_ms: int = 300,
    tts_ms_per_char: float = 10.0,
    frameworks: tuple[str, ...] = ("hark", "pipecat"),
    repeats: int = 1,
    script: Script | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """``repeats`` runs; in each, every framework and STT delay in turn (so they share the
    machine's conditions), ``turns`` turns per framework and run (split over the delays).
    ``script``: the fakes' reply and the server's first chunk (hark only), else the defaults."""
    base = script or Script()
    per_delay = max(1, -(-turns // len(stt_delays)))
    out: dict[str, Any] = {"turns": {f: [] for f in frameworks}, "errors": {}, "stalls": {}}
    for repeat in range(repeats):
        for framework in frameworks:
            # A failed server (one run's) does not end the framework's other runs.
            if framework == "pipecat" and (why := pipecat_available()) is not None:
                out["errors"]["pipecat"] = why
                continue
            for delay in stt_delays:
                try:
                    got, seen = _one(
                        framework,
                        replace(base, stt_final_ms=delay),
                        per_delay,
                        sessions,
                        speech,
                        end_silence_ms,
                        tts_ms_per_char,
                        log,
                    )
                except Exception as exc:
                    out["errors"][framework] = f"run {repeat + 1}: {type(exc).__name__}: {exc}"
                    break
                for turn in got:
                    turn.run = repeat
                out["turns"][framework].extend(asdict(t) for t in got)
                if seen is not None:
                    out["stalls"].setdefault(framework, []).append(
                        {"run": repeat, "stt_final_ms": delay, **seen}
                    )
    return out


def _one(
    framework: str,
    script: Script,
    turns: int,
    sessions: int,
    speech: Utterance,
    end_silence_ms: int,
    tts_ms_per_char: float,
    log: Any,
) -> tuple[list[Turn], dict[str, Any] | None]:
    """One server, one STT delay: its turns and (hark) what its stall probe saw."""
    delay = script.stt_final_ms
    server: ServerProcess
    if framework in ("hark", "hark_speculative"):
        env = scripted_env(
            stt_final_ms=delay,
            tts_ms_per_char=tts_ms_per_char,
            end_silence_ms=end_silence_ms,
            speculation=framework == "hark_speculative",
            precise=True,
            reply=script.reply,
            first_clause_words=script.first_clause_words,
        )
        server, wire = hark_server(env), "binary"
    else:
        server, wire = (
            pipecat_server(script, end_silence_ms=end_silence_ms, tts_ms_per_char=tts_ms_per_char),
            "raw",
        )
    log(f"  {framework}: {turns} turns, STT final {delay:g} ms, {sessions} sessions")
    with server:
        url = server.ws_base + (HARK_BINARY_PATH if wire == "binary" else "/ws")
        started = time.monotonic()
        got = asyncio.run(
            drive(
                url,
                wire=wire,
                sessions=sessions,
                turns=turns,
                speech=speech,
                script=script,
                end_silence_ms=end_silence_ms,
            )
        )
        if not isinstance(server, HarkServer):
            return got, None
        time.sleep(probe.FLUSH_S + 0.1)
        events = server.stalls()
    return got, {
        **stalls.window(events, started, time.monotonic()),
        "attribution": stalls.attribute([asdict(t) for t in got], events),
    }


def summarise(turns: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [t for t in turns if t["ok"]]
    result: dict[str, Any] = {
        "overhead_ms": stats.summary([t["overhead_ms"] for t in ok]),
        "voice_to_voice_ms": stats.summary([t["voice_to_voice_ms"] for t in ok]),
        "end_of_turn_wait_ms": stats.summary([t["end_of_turn_wait_ms"] for t in ok]),
        "turns_ok": len(ok),
        "turns_failed": len(turns) - len(ok),
        "failures": sorted({t["error"] for t in turns if not t["ok"] and t["error"]})[:5],
        "send_lateness_ms": stats.summary(
            [t["send_lateness_ms"] for t in ok if t["send_lateness_ms"] is not None]
        ),
        "resampler_hold_ms": stats.summary(
            [t["resampler_hold_ms"] for t in ok if t["resampler_hold_ms"] is not None]
        ),
        "overhead_after_resampler_ms": stats.summary(
            [t["overhead_ms"] - t["resampler_hold_ms"] for t in ok if t["resampler_hold_ms"] is not None]
        ),
    }
    by_delay: dict[str, Any] = {}
    for delay in sorted({t["stt_final_ms"] for t in ok}):
        subset = [t["overhead_ms"] for t in ok if t["stt_final_ms"] == delay]
        by_delay[f"stt_{delay:g}ms"] = stats.summary(subset)
    result["overhead_by_stt_delay_ms"] = by_delay
    result["runs"] = {key: runs_spread(ok, key) for key in ("overhead_ms", "voice_to_voice_ms")}
    server = [t for t in ok if t.get("server_overhead_ms") is not None]
    if server:
        result["server_overhead_ms"] = stats.summary([t["server_overhead_ms"] for t in server])
        result["server_breakdown_ms"] = server_breakdown(server)
    return result


def server_breakdown(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """Where hark's own (server-side) overhead goes, stage by stage, from ``hark.latency``."""
    script = Script()
    rows: dict[str, list[float]] = {"stt_dispatch": [], "llm_start": [], "tts": []}
    for t in turns:
        s = t["server"]
        eot, stt_ms, ttft, ttfb = s["end_of_turn_ms"], s["stt_ms"], s["llm_ttft_ms"], s["tts_ttfb_ms"]
        if None in (eot, stt_ms, ttft, ttfb):
            continue
        rows["stt_dispatch"].append(stt_ms - eot - t["stt_final_ms"])
        rows["llm_start"].append(ttft - script.llm_first_token_ms)
        rows["tts"].append(ttfb - script.tts_first_audio_ms)
    return {k: stats.summary(v, (50, 95)) for k, v in rows.items()}


def runs_spread(turns: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Each run's p50/p95/p99 of ``key``, and across runs the median and the spread (min–max)."""
    per_run = [
        stats.summary([t[key] for t in turns if t.get("run", 0) == r and t[key] is not None])
        for r in sorted({t.get("run", 0) for t in turns})
    ]
    return {"per_run": per_run, **stats.across(per_run)}
