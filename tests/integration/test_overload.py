"""Overload (RELIABILITY #29): more talkers than the engines can serve in real time.

A real `hark serve` with its real local engines (faster-whisper and Piper) in ONE worker process
and a short line (``queue_limit`` 3), and four people talking over each other, turn after turn:
far more transcription and speech than one worker keeps up with. Then hark must slow down
gracefully: no conversation closed by the server, every finished turn its final transcript and
its spoken answer, partial transcripts shed first (never a final), a fifth conversation refused
cleanly (503 + Retry-After) while /ready says not-ready, and everything back to normal once the
talkers leave. Figures are printed; only behaviour is asserted (no timing limits).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.load import Session, percentile
from tests.servers import HarkProcess
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

TALKERS = 4
TURNS = 2
RATE = 24_000
CHUNK_MS = 100
CHUNK = RATE * 2 * CHUNK_MS // 1000
TURN_TIMEOUT_S = 120.0
"""Generous: an answer may be very late under this load (and on a busy machine), never lost."""
ENV = {
    "HARK_WORKERS_PROCESSES": "1",
    "HARK_WORKERS_QUEUE_LIMIT": "3",
    "HARK_ADMISSION_MAX_CONVERSATIONS": str(TALKERS),
    "HARK_ADMISSION_WINDOW_S": "3",
    "HARK_FALLBACK_BREAKER_FAILURES": "1",  # one "failure" would open the only provider's circuit
}
SENTENCES = [
    "Please call my mother tomorrow morning.",
    "What is the weather like in Paris today?",
    "Remind me to buy milk and bread after work.",
]


async def talk_until(session: Session, pcm: bytes, done: Callable[[], bool], timeout: float) -> None:
    """Stream ``pcm`` at real time like a microphone, then silence until ``done()``."""
    started = time.monotonic()
    quiet = silence(CHUNK_MS)
    for n in range(10**9):
        piece = pcm[n * CHUNK : (n + 1) * CHUNK]
        if not piece and done():
            return
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"turn not answered within {timeout:g} s")
        await session.append(piece or quiet)
        await asyncio.sleep(max(0.0, started + (n + 1) * CHUNK_MS / 1000 - time.monotonic()))


def turn_result(session: Session, mark: int) -> dict[str, Any]:
    ended = [e["item_id"] for e in session.of("input_audio_buffer.speech_stopped", mark)]
    finals = {
        e["item_id"]: e["transcript"]
        for e in session.of("conversation.item.input_audio_transcription.completed", mark)
    }
    done = session.of("response.done", mark)
    return {
        "turns": ended,
        "finals": [finals.get(item) for item in ended],
        "failed_transcripts": len(session.of("conversation.item.input_audio_transcription.failed", mark)),
        "answers": [d["response"]["status"] for d in done],
        "partials": len(session.of("conversation.item.input_audio_transcription.delta", mark)),
        "latency": [e["voice_to_voice_ms"] for e in session.of("hark.latency", mark)],
    }


async def talker(url: str, index: int, speech: list[bytes]) -> dict[str, Any]:
    await asyncio.sleep(index * 0.3)
    session = await Session.open(url + "&hark_events=1")  # hark.latency is one of hark's own events
    results = []
    try:
        for turn in range(TURNS):
            mark = session.mark()
            pcm = silence(300) + speech[(index + turn) % len(speech)] + silence(700)

            def answered(mark: int = mark) -> bool:
                ended = len(session.of("input_audio_buffer.speech_stopped", mark))
                return ended > 0 and len(session.of("response.done", mark)) >= ended

            await talk_until(session, pcm, answered, TURN_TIMEOUT_S)
            results.append(turn_result(session, mark))
            await asyncio.sleep(0.5 + index * 0.1)
        return {"turns": results, "closed": session.closed, "errors": session.of("error")}
    finally:
        await session.close()


async def until_not_ready(client: httpx.AsyncClient, limit_s: float = 60.0) -> httpx.Response:
    """/ready once it answers 503 (or, after ``limit_s``, whatever it answers)."""
    deadline = time.monotonic() + limit_s
    while (response := await client.get("/ready")).status_code == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return response


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    text = (await client.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def test_more_talkers_than_the_engines_serve_slow_down_but_nobody_is_dropped(tmp_path: Path) -> None:
    speech = [speak(text) for text in SENTENCES]
    with HarkProcess(env=ENV, log_path=tmp_path / "server.log") as hark:
        async with httpx.AsyncClient(base_url=hark.base_url, timeout=10) as http:
            # 1. A single talker first: the partials a turn gets when nobody competes.
            alone = await talker(hark.ws_url, 0, speech[:1])
            alone_partials = sum(t["partials"] for t in alone["turns"]) / TURNS

            # 2. Four at once: more than one worker can serve in real time.
            load = asyncio.gather(*(talker(hark.ws_url, i, speech) for i in range(TALKERS)))
            ready_at_capacity = await until_not_ready(http)  # every talker connected
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(hark.ws_url, open_timeout=10)
            results = await load

            # 3. The talkers left: back to normal.
            await asyncio.sleep(4.0)  # past the admission window (3 s)
            ready_after = await http.get("/ready")
            after = await talker(hark.ws_url, 0, speech[1:2])
            shed = {
                p: await metric(http, "hark_worker_shed_total", priority=p)
                for p in ("final", "request", "speculative", "partial")
            }
            refusals = await metric(http, "hark_admission_refused_total")
            circuit = await metric(http, "hark_provider_circuit_open")
            depth = await metric(http, "hark_worker_queue_depth")
            closed_by_server = await metric(http, "hark_sessions_closed_total", reason="error")
        log = (tmp_path / "server.log").read_text(errors="replace")

    turns = [t for r in results for t in r["turns"]]
    latencies = [ms for t in turns for ms in t["latency"] if ms is not None]
    loaded_partials = sum(t["partials"] for t in turns) / len(turns)
    print(
        f"\noverload: {TALKERS} talkers x {TURNS} turns on 1 worker: "
        f"{sum(len(t['turns']) for t in turns)} turns answered; voice-to-voice p50 "
        f"{percentile(latencies, 50):.0f} ms, p95 {percentile(latencies, 95):.0f} ms, "
        f"max {max(latencies):.0f} ms; partials per turn {alone_partials:.1f} alone -> "
        f"{loaded_partials:.1f} under load; shed {shed}; admission refusals {refusals:.0f}"
    )
    # No conversation was closed by the server, and none was told it failed.
    assert all(r["closed"] is None for r in results), [r["closed"] for r in results]
    assert not [e for r in results for e in r["errors"] if e["error"].get("code") == "session_failed"]
    assert closed_by_server == 0 and "engines unavailable" not in log and "Traceback" not in log
    # Every finished turn got its final transcript and its spoken answer.
    for turn in turns:
        assert turn["turns"] and all(turn["finals"]), turn
        assert turn["failed_transcripts"] == 0, turn
        assert turn["answers"].count("completed") >= len(turn["turns"]), turn
    # Under pressure the least useful work gives way first: partials are shed from the queue or
    # made less often, finals never. (Since 2026-12-02 one worker keeps up with these four talkers
    # without shedding: 4.0 -> 3.5 partials per turn in two runs; test_work_priorities.py sheds.)
    assert shed["final"] == 0 and loaded_partials <= alone_partials, (shed, alone_partials, loaded_partials)
    assert circuit == 0  # saturation opened no circuit (one failure would have)
    # One more conversation was refused cleanly while they talked, and /ready said so.
    assert refused.value.response.status_code == 503
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert ready_at_capacity.status_code == 503 and ready_at_capacity.json()["checks"]["capacity"] is False
    assert refusals >= 1
    # Back to normal: ready, nothing waiting, and a new conversation served.
    assert ready_after.status_code == 200 and depth == 0
    assert after["closed"] is None
    assert all(t["finals"][0] and "completed" in t["answers"] for t in after["turns"])
