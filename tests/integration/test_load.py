"""Short CI versions of the load tests (RELIABILITY #4, #8, #10, #11), with the scripted
(fixed-delay) engines so the figures are the framework's own: concurrent real-time sessions,
input audio pushed faster than real time, the session cap, and a client that stops reading.

Each test starts its own hark process. Figures are printed; only behaviour is asserted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from hark.bench.fakes import PLUGIN_ENV
from tests.load import LagProbe, Session, percentile, rss_kib
from tests.servers import HarkProcess
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

SCRIPTED = {
    **PLUGIN_ENV,
    "HARK_STT_PROVIDERS": '[{"kind": "scripted"}]',
    "HARK_TTS_PROVIDERS": '[{"kind": "scripted"}]',
    "HARK_LLM_PROVIDERS": '[{"kind": "scripted"}]',
    "HARK_WORKERS_ENABLED": "false",
}
ECHO = {k: v for k, v in SCRIPTED.items() if k != "HARK_LLM_PROVIDERS"}
RATE = 24_000
CHUNK_MS = 100
CHUNK_BYTES = RATE * 2 * CHUNK_MS // 1000


def mib(kib: int) -> float:
    return kib / 1024


def no_tracebacks(log: Path) -> None:
    assert "Traceback" not in log.read_text(errors="replace")


# -- (a) concurrent sessions at real time (#11, short) ------------------------------------------

SESSIONS = 20
STREAM_S = 20.0


async def stream_session(url: str, index: int, pcm: bytes) -> dict[str, Any]:
    await asyncio.sleep(index * 0.05)  # staggered like real clients
    session = await Session.open(url)
    started = time.monotonic()
    for n, offset in enumerate(range(0, len(pcm), CHUNK_BYTES)):
        await session.append(pcm[offset : offset + CHUNK_BYTES])
        await asyncio.sleep(max(0.0, started + (n + 1) * CHUNK_MS / 1000 - time.monotonic()))
    done = await session.wait_for("response.done", timeout=15)
    result = {
        "status": done["response"]["status"],
        "errors": session.of("error"),
        "open": session.closed is None,
        "audio_deltas": len(session.of("response.output_audio.delta")),
        "streamed_s": time.monotonic() - started,
    }
    await session.close()
    return result


async def test_twenty_sessions_at_real_time(tmp_path: Path) -> None:
    speech = speak("Please call my mother tomorrow morning.")
    pcm = silence(1000) + speech
    pcm += silence(int(STREAM_S * 1000) - len(pcm) * 1000 // (2 * RATE))
    log = tmp_path / "server.log"
    with HarkProcess(env=SCRIPTED, log_path=log) as hark:
        assert hark.process is not None
        pid = hark.process.pid
        cold = rss_kib(pid)
        warm = await Session.open(hark.ws_url)  # one turn first: lazily built state is not growth
        await warm.text_turn("Warm up.")
        await warm.close()
        before = rss_kib(pid)
        with LagProbe(hark.base_url) as probe:
            started = time.monotonic()
            results = await asyncio.gather(*(stream_session(hark.ws_url, i, pcm) for i in range(SESSIONS)))
            elapsed = time.monotonic() - started
        await asyncio.sleep(1.0)
        after = rss_kib(pid)
        no_tracebacks(log)

    lag = probe.summary()
    completed = sum(r["status"] == "completed" for r in results)
    errors = [e for r in results for e in r["errors"]]
    growth = (after - before) / before
    print(
        f"\n[load a] {SESSIONS} sessions × {STREAM_S:.0f} s of audio at real time in {elapsed:.1f} s: "
        f"held {sum(r['open'] for r in results)}, replies completed {completed}, error events {len(errors)}"
    )
    print(
        f"[load a] /health probe every 50 ms: {lag['probes']} probes, p50 {lag['p50_ms']:.1f} ms, "
        f"p99 {lag['p99_ms']:.1f} ms, max {lag['max_ms']:.1f} ms; event-loop lag (p99 - p50) "
        f"{lag['lag_p99_ms']:.1f} ms"
    )
    print(
        f"[load a] server RSS: cold {mib(cold):.1f} MiB, before {mib(before):.1f} MiB, "
        f"after {mib(after):.1f} MiB ({growth * 100:+.1f}%)"
    )
    assert completed == SESSIONS, results
    assert not errors, errors[:5]
    assert all(r["open"] for r in results)
    assert all(r["audio_deltas"] > 0 for r in results)
    assert growth < 0.5


# -- (b) audio pushed at 5× real time (#4) ------------------------------------------------------


async def test_audio_at_five_times_real_time_is_throttled(tmp_path: Path) -> None:
    audio_s, speed = 10.0, 5.0
    pcm = silence(int(audio_s * 1000))
    log = tmp_path / "server.log"
    with HarkProcess(env=SCRIPTED, log_path=log) as hark:
        assert hark.process is not None
        before = rss_kib(hark.process.pid)
        session = await Session.open(hark.ws_url)
        mark = session.mark()
        started = time.monotonic()
        for n, offset in enumerate(range(0, len(pcm), CHUNK_BYTES)):
            await session.append(pcm[offset : offset + CHUNK_BYTES])
            await asyncio.sleep(max(0.0, started + (n + 1) * CHUNK_MS / 1000 / speed - time.monotonic()))
        sent_s = time.monotonic() - started
        # Events are handled in order: the answer to this one comes once all the audio is taken.
        await session.send({"type": "session.update", "session": {"type": "realtime"}})
        await session.wait_for("session.updated", after=mark, timeout=30)
        accepted_s = time.monotonic() - started
        turn_s = await session.text_turn("Still there?")
        peak = rss_kib(hark.process.pid)
        errors = session.of("error")
        assert session.closed is None
        await session.close()
        no_tracebacks(log)
    # Throttle: 2 s burst, then 2× real time → (10 - 2) / 2 = 4 s at least.
    print(
        f"\n[load b] {audio_s:.0f} s of audio sent at {speed:.0f}× in {sent_s:.1f} s; the server took "
        f"{accepted_s:.1f} s to accept it (≥ 4 s expected at max_audio_speed 2× with a 2 s burst); "
        f"buffered ahead of pace ≤ {max(0.0, audio_s - 2.0 * accepted_s):.1f} s by that bound; "
        f"next turn {turn_s * 1000:.0f} ms; RSS {mib(before):.1f} → {mib(peak):.1f} MiB"
    )
    assert accepted_s >= 3.6
    assert not errors, errors


# -- (c) the session cap (#8) -------------------------------------------------------------------


async def attempt(url: str) -> tuple[str, float, Any]:
    started = time.monotonic()
    try:
        ws = await websockets.connect(url, open_timeout=10, max_size=None)
    except websockets.InvalidStatus as exc:
        return f"http {exc.response.status_code}", time.monotonic() - started, None
    except (OSError, websockets.WebSocketException, TimeoutError) as exc:
        return f"failed {type(exc).__name__}", time.monotonic() - started, None
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        return f"close {code}", time.monotonic() - started, None
    return first["type"], time.monotonic() - started, ws


async def test_session_cap_refuses_the_rest_quickly(tmp_path: Path) -> None:
    cap, extra = 5, 50
    log = tmp_path / "server.log"
    with HarkProcess(env={**SCRIPTED, "HARK_SECURITY_MAX_SESSIONS": str(cap)}, log_path=log) as hark:
        results = await asyncio.gather(*(attempt(hark.ws_url) for _ in range(cap + extra)))
        served = [ws for kind, _, ws in results if kind == "session.created"]
        refused = [(kind, t) for kind, t, _ in results if kind in ("http 503", "close 1013")]
        other = [kind for kind, _, _ in results if kind not in ("session.created", "http 503", "close 1013")]
        # The served sessions work.
        turns = []
        for ws in served:
            session = Session(ws)
            turns.append(await session.text_turn("Are you there?"))
            await session.close()
        await asyncio.sleep(0.3)
        # Their slots are free again.
        kind, _, ws = await attempt(hark.ws_url)
        if ws is not None:
            await ws.close()
        no_tracebacks(log)
    times = [t for _, t in refused]
    served_times = [t for k, t, _ in results if k == "session.created"]
    print(
        f"\n[load c] cap {cap}, {cap + extra} connections at once: served {len(served)}, "
        f"refused {len(refused)} ({sorted({k for k, _ in refused})}), other {other}"
    )
    print(
        f"[load c] refusal time p50 {percentile(times, 50) * 1000:.0f} ms, p95 "
        f"{percentile(times, 95) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms (client-side, "
        f"all {cap + extra} started at once); served handshake p95 "
        f"{percentile(served_times, 95) * 1000:.0f} ms; served turns p95 "
        f"{percentile(turns, 95) * 1000:.0f} ms; after release a new session got {kind}"
    )
    assert len(served) == cap
    assert len(refused) == extra, other
    assert percentile(times, 95) < 1.0
    assert kind == "session.created"


# -- (d) a client that stops reading (#10) ------------------------------------------------------


def long_text(seconds: float, ms_per_char: float = 10.0) -> str:
    sentence = "The quick brown fox jumps over the lazy dog again and again. "
    return (sentence * int(seconds * 1000 / ms_per_char / len(sentence) + 1)).strip()


async def slow_reader(url: str, port: int) -> Any:
    """A connection whose client never reads: a tiny receive buffer, and websockets stops
    reading from the socket as soon as one message is queued."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await websockets.connect(
        url, sock=sock, max_queue=1, max_size=None, open_timeout=10, compression=None
    )


def server_send_queue(port: int) -> int | None:
    """Bytes the kernel holds in the server's send queues on ``port`` (from ``ss``), or None."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    out = subprocess.run(
        [ss, "-tnH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True
    ).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.split())


SLOW_READER: dict[str, Any] = {}


async def slow_reader_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The slow-reader scenario, run once for the two tests below (it takes ~15 s)."""
    if SLOW_READER:
        return SLOW_READER
    stall_s, reply_s = 10.0, 60.0
    log = tmp_path_factory.mktemp("hark-slow-reader") / "server.log"
    with HarkProcess(env=ECHO, log_path=log) as hark:
        assert hark.process is not None
        pid = hark.process.pid
        healthy = await Session.open(hark.ws_url)
        baseline = [await healthy.text_turn("Hello.") for _ in range(5)]
        before = rss_kib(pid)

        ws = await slow_reader(hark.ws_url, hark.port)
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": long_text(reply_s)}],
        }
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await ws.send(json.dumps({"type": "response.create"}))
        response_at = time.monotonic()
        during: list[float] = []
        peak = before
        with LagProbe(hark.base_url) as probe:
            while time.monotonic() - response_at < stall_s:
                during.append(await healthy.text_turn("Hello."))
                peak = max(peak, rss_kib(pid))
                await asyncio.sleep(0.2)
        send_queue = server_send_queue(hark.port)
        # Now read what reached the client, as fast as possible: what arrives in the first
        # 0.5 s is what was buffered for it.
        audio = backlog = 0
        close_code: int | None = None
        close_reason = ""
        drain_started = time.monotonic()
        try:
            while time.monotonic() - drain_started < 2.0:
                message = json.loads(await asyncio.wait_for(ws.recv(), 2.0))
                if message["type"] == "response.output_audio.delta":
                    audio += len(base64.b64decode(message["delta"]))
                    if time.monotonic() - drain_started < 0.5:
                        backlog = audio
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None:
                close_code, close_reason = exc.rcvd.code, exc.rcvd.reason
        except TimeoutError:
            pass
        produced_s = time.monotonic() - response_at + 0.6  # paced at real time, 600 ms lead
        ws.transport.abort()  # gone without a closing handshake, like a dead client
        peak = max(peak, rss_kib(pid))
        after_turn = await healthy.text_turn("Still answering?")
        healthy_open = healthy.closed is None
        await healthy.close()
        no_tracebacks(log)

    lag = probe.summary()
    received_s = audio / 2 / RATE
    dropped = close_code is None and received_s < produced_s - 2.0
    print(
        f"\n[load d] slow reader (no compression), {reply_s:.0f} s reply, not read for {stall_s:.0f} s: "
        f"close {close_code} {close_reason!r}; audio received {received_s:.1f} s of ~{produced_s:.1f} s "
        f"produced ({'dropped' if dropped else 'nothing dropped'}); backlog delivered on resuming "
        f"{backlog / 2 / RATE:.1f} s ({backlog * 4 / 3 / 1024:.0f} KiB as base64); kernel send queue "
        f"on the server after {stall_s:.0f} s: {send_queue if send_queue is None else send_queue // 1024} KiB"
    )
    print(
        f"[load d] server RSS {mib(before):.1f} → peak {mib(peak):.1f} MiB; healthy session p95 "
        f"{percentile(baseline, 95) * 1000:.0f} ms alone, {percentile(during, 95) * 1000:.0f} ms beside it "
        f"({len(during)} turns), after {after_turn * 1000:.0f} ms; /health lag p99-p50 "
        f"{lag['lag_p99_ms']:.1f} ms (max {lag['max_ms']:.1f} ms)"
    )
    SLOW_READER.update(
        close_code=close_code,
        dropped=dropped,
        rss_growth_kib=peak - before,
        during=during,
        healthy_open=healthy_open,
    )
    return SLOW_READER


async def test_slow_reader_leaves_other_sessions_and_memory_alone(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    result = await slow_reader_run(tmp_path_factory)
    assert result["rss_growth_kib"] < 64 * 1024
    assert result["during"], "the healthy session stopped answering"
    assert result["healthy_open"]


async def test_slow_reader_gets_audio_dropped_or_closed_within_10_s(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    result = await slow_reader_run(tmp_path_factory)
    assert result["close_code"] == 1008 or result["dropped"]
