"""Where a turn's overhead goes, hop by hop, as the bench client sees it (scenario 1's overhead,
one session, hark only).

The stall probe's trace (``HARK_BENCH_TRACE=1``, see ``hark.bench.probe``) stamps the server's
side on the machine's monotonic clock, which the client shares, so the client's overhead of each
turn (decision frame sent → first reply audio received, less the fakes' delays) splits into:

- ``in_socket``: the client's write, the kernel, the server's loop waking for the frame;
- ``in_server``: the WebSocket parse, the ASGI queue, the reader task, the session's handling;
- ``listener``: resampling, the VAD thread's round trip on the decisive chunk, the turn logic
  and the start of the turn's work;
- ``pipeline``: end of turn → reply audio in the outbox, less the fakes' delays (the
  transcript, LLM and TTS hand-offs, and the fakes' own timer overshoot), split where the fakes
  start their clocks into ``to_llm`` (end of turn → the LLM's stream first read: the transcript,
  the response's start), ``to_tts`` (the first sentence's last token due → the TTS's stream first
  read: the token's way through thinking and splitting) and ``to_outbox`` (the first audio due →
  in the outbox: the responder, the conversation's event, the codec);
- ``out_server``: outbox → the frame handed to the socket (the writer task, framing);
- ``out_socket``: the kernel, the client's loop waking, websockets' parse, the client's task.

::

    python -m hark.bench.hops [turns]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from hark.bench import stats
from hark.bench.audio import frames, utterance
from hark.bench.client import Session
from hark.bench.fakes import Script, first_sentence_token_index
from hark.bench.overhead import HARK_BINARY_PATH, Turn, hark_turn
from hark.bench.server import hark_server, scripted_env

HOPS = ("in_socket", "in_server", "listener", "pipeline", "out_server", "out_socket")
PIPELINE_PARTS = ("to_llm", "to_tts", "to_outbox")


def split(
    turn: Turn, events: Sequence[Sequence[Any]], script: Script | None = None
) -> dict[str, float] | None:
    """One turn's hops in ms (None when the trace lacks one of its points); with ``script``, the
    pipeline's parts too (``PIPELINE_PARTS``, not in the total)."""
    if not turn.ok or turn.decision_at is None or turn.audio_at is None or turn.scripted_ms is None:
        return None
    start, end = turn.decision_at, turn.audio_at
    push = next((e for e in events if e[0] == "push" and start < e[1] < end), None)
    if push is None:
        return None
    rx = max((e[1] for e in events if e[0] == "rx" and start <= e[1] <= push[1]), default=None)
    queued = next((e[1] for e in events if e[0] == "queued" and push[2] <= e[1] <= end), None)
    tx = next((e[1] for e in events if e[0] == "tx" and queued is not None and queued <= e[1] <= end), None)
    if rx is None or queued is None or tx is None:
        return None
    ms = 1000.0
    parts: dict[str, float] = {}
    llm = next((e[1] for e in events if e[0] == "llm" and push[2] <= e[1] <= queued), None)
    tts = next((e[1] for e in events if e[0] == "tts" and llm is not None and llm <= e[1] <= queued), None)
    if script is not None and llm is not None and tts is not None:
        k = first_sentence_token_index(script.reply, script.first_clause_words)
        token_due = llm + (script.llm_first_token_ms + k * script.llm_token_ms) / ms
        parts = {
            "to_llm": (llm - push[2]) * ms - script.stt_final_ms,
            "to_tts": (tts - token_due) * ms,
            "to_outbox": (queued - tts) * ms - script.tts_first_audio_ms,
        }
    return {
        "in_socket": (rx - start) * ms,
        "in_server": (push[1] - rx) * ms,
        "listener": (push[2] - push[1]) * ms,
        "pipeline": (queued - push[2]) * ms - turn.scripted_ms,
        "out_server": (tx - queued) * ms,
        "out_socket": (end - tx) * ms,
    } | parts


async def _turns(url: str, count: int, script: Script) -> list[Turn]:
    session = Session(url, wire="binary")
    await session.start()
    try:
        speech = [session.encode(f) for f in frames(utterance().pcm)]
        out = []
        for _ in range(count):
            await asyncio.sleep(0.5)
            out.append(await hark_turn(session, speech, script=script, end_silence_ms=300))
        return out
    finally:
        await session.close()


def run(turns: int = 20) -> dict[str, Any]:
    script = Script(stt_final_ms=0.0)
    env = {**scripted_env(precise=True), "HARK_BENCH_TRACE": "1"}
    with hark_server(env) as server:
        done = asyncio.run(_turns(server.ws_base + HARK_BINARY_PATH, turns, script))
        time.sleep(0.7)  # the probe writes every half second
        events = server.stalls()
    rows = [r for r in (split(t, events, script) for t in done) if r is not None]
    result: dict[str, Any] = {"turns": len(done), "traced": len(rows)}
    for hop in (*HOPS, "total"):
        values = [sum(r[h] for h in HOPS) if hop == "total" else r[hop] for r in rows]
        result[hop] = stats.summary(values, (50, 90), digits=2)
    for part in PIPELINE_PARTS:
        values = [r[part] for r in rows if part in r]
        result[part] = stats.summary(values, (50, 90), digits=2)
    result["overhead_ms"] = stats.summary(
        [t.overhead_ms for t in done if t.overhead_ms is not None], (50, 90)
    )
    result["server_overhead_ms"] = stats.summary(
        [t.server_overhead_ms for t in done if t.server_overhead_ms is not None], (50, 90)
    )
    return result


def main() -> int:
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(json.dumps(run(turns), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
