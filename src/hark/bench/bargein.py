"""Scenario 4: barge-in. The user speaks while a reply is playing; how soon does the reply stop?

Each turn: the question, then (0.3-1.0 s into the ~3.7 s reply) the interruption. From the first
frame of interrupting speech (``speech_sent``, its first audible sample) the client times:

- ``bargein_ms``: to the last reply audio frame it received (the issue's figure: the reply's
  audio stops there; hark paces audio 600 ms ahead, so a frame sent just before the cut may
  still arrive a little after it);
- ``stop_signal_ms``: to ``input_audio_buffer.speech_started`` (the client drops what it has
  buffered: what the listener hears stops here);
- ``cancelled_ms``: to ``response.done`` with status ``cancelled``;
- ``vad_ms``: to the frame holding the last sample of the VAD chunk on which speech was
  confirmed (``vad.start_ms`` of speech over the threshold): the part the VAD model needs;
- ``framework_ms``: ``stop_signal_ms`` - ``vad_ms``: hark's own part of the stop.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hark.bench import stats
from hark.bench.audio import INTERRUPTION, QUESTION, frames, utterance
from hark.bench.client import Received, Session
from hark.bench.server import hark_server, scripted_env

START_MS = 96  # hark's default vad.start_ms
TIMEOUT_S = 20.0


async def reply_playing(
    session: Session, question: list[str | bytes], limit_s: float = TIMEOUT_S
) -> tuple[int, str]:
    """Ask ``question`` and wait for the first audio of its reply: (the mark before it, the
    reply's response id)."""
    mark = session.mark()
    session.enqueue(question)
    created = await session.wait_for("response.created", after=mark, limit_s=limit_s)
    rid: str = created.data["response"]["id"]
    await session.wait_for("audio", lambda r: r.data.get("response_id") == rid, after=mark, limit_s=limit_s)
    return mark, rid


async def bargein_turn(
    session: Session, question: list[str | bytes], interruption: list[str | bytes], rng: random.Random
) -> dict[str, Any]:
    mark, rid = await reply_playing(session, question)

    def mine(r: Received) -> bool:
        return bool(r.data.get("response_id") == rid)

    await asyncio.sleep(rng.uniform(0.3, 1.0))
    cut = session.mark()
    first, _ = session.enqueue(interruption)
    started = await session.wait_for("input_audio_buffer.speech_started", after=cut, limit_s=TIMEOUT_S)
    done = await session.wait_for(
        "response.done", lambda r: r.data["response"]["id"] == rid, after=mark, limit_s=TIMEOUT_S
    )
    if done.data["response"]["status"] != "cancelled":
        return {"ok": False, "error": f"the reply was not cancelled ({done.data['response']['status']})"}
    speech_sent = await session.sent(first)
    last_audio = [r for r in session.events[mark:] if r.type == "audio" and mine(r)][-1]
    run_start = int(started.data["audio_start_ms"]) // stats.VAD_CHUNK_MS
    confirm_chunk = run_start + max(1, round(START_MS / stats.VAD_CHUNK_MS)) - 1
    vad_sent = await session.sent(stats.position_frame(confirm_chunk))
    # Let this reply's next turn start from silence (the interruption gets its own reply).
    next_created = await session.wait_for("response.created", after=cut, limit_s=TIMEOUT_S)
    await session.wait_for(
        "response.done",
        lambda r: r.data["response"]["id"] == next_created.data["response"]["id"],
        after=cut,
        limit_s=TIMEOUT_S,
    )

    def ms(t: float) -> float:
        return round((t - speech_sent) * 1000.0, 2)

    return {
        "ok": True,
        "bargein_ms": ms(last_audio.at),
        "stop_signal_ms": ms(started.at),
        "cancelled_ms": ms(done.at),
        "vad_ms": ms(vad_sent),
        "framework_ms": round(ms(started.at) - ms(vad_sent), 2),
    }


async def _drive(url: str, turns: int, sessions: int) -> list[dict[str, Any]]:
    rng = random.Random(11)
    question = frames(utterance(QUESTION).pcm)
    interruption = frames(utterance(INTERRUPTION).pcm)
    results: list[dict[str, Any]] = []
    remaining = turns
    opened: list[Session] = []

    async def worker() -> None:
        nonlocal remaining
        session = Session(url)
        opened.append(session)
        await session.start()
        q = [session.encode(f) for f in question]
        i = [session.encode(f) for f in interruption]
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        while remaining > 0:
            remaining -= 1
            try:
                results.append(await bargein_turn(session, q, i, rng))
            except (TimeoutError, ConnectionError, KeyError) as exc:
                results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            if session.error:
                return
            await asyncio.sleep(rng.uniform(0.5, 1.0))

    try:
        await asyncio.gather(*(worker() for _ in range(sessions)))
    finally:
        await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)
    return results


def run(*, turns: int, sessions: int = 2, log: Any = print) -> dict[str, Any]:
    env = scripted_env(tts_ms_per_char=60.0)
    log(f"  {turns} interruptions, {sessions} sessions")
    with hark_server(env) as server:
        results = asyncio.run(
            _drive(server.ws_base + "/v1/realtime?model=hark&hark_events=1", turns, sessions)
        )
    ok = [r for r in results if r["ok"]]
    keys = ("bargein_ms", "stop_signal_ms", "cancelled_ms", "vad_ms", "framework_ms")
    return {
        "turns": results,
        "turns_ok": len(ok),
        "turns_failed": len(results) - len(ok),
        "failures": sorted({r["error"] for r in results if not r["ok"]})[:5],
        "vad_start_ms": START_MS,
        "target_ms": START_MS + 20,
        **{key: stats.summary([r[key] for r in ok]) for key in keys},
    }
