"""The bench client's direct send path, its waits, and the capacity ramp's bookkeeping."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import serve

from hark.bench import capacity
from hark.bench.client import Received, Session, resampled_samples, resampled_table, wire_frame


def _unmask(frame: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of one masked client frame."""
    assert frame[0] & 0x80  # FIN
    assert frame[1] & 0x80  # masked, as every client frame must be
    length, offset = frame[1] & 0x7F, 2
    if length == 126:
        length, offset = int.from_bytes(frame[2:4], "big"), 4
    mask = np.frombuffer(frame[offset : offset + 4], dtype=np.uint8)
    payload = np.frombuffer(frame[offset + 4 :], dtype=np.uint8)
    assert len(payload) == length
    return frame[0] & 0x0F, (payload ^ np.resize(mask, length)).tobytes()


def test_a_payload_is_framed_once_and_reused() -> None:
    pcm = bytes(range(256)) * 4  # 1,024 bytes: a 16-bit length
    framed = wire_frame(pcm)
    assert _unmask(framed) == (0x2, pcm)
    assert wire_frame(pcm) is framed
    assert _unmask(wire_frame('{"type": "x"}')) == (0x1, b'{"type": "x"}')
    assert _unmask(wire_frame(b"\x00\x01")) == (0x2, b"\x00\x01")


def test_the_resampled_table_matches_the_per_frame_counts() -> None:
    table = resampled_table(5000)
    assert len(table) == 5000
    assert [table[i] for i in (0, 1, 4999)] == [resampled_samples(i) for i in (0, 1, 4999)]
    assert list(resampled_table(0)) == []


async def test_frames_reach_a_server_intact_and_waits_wake_on_their_event() -> None:
    got: list[bytes | str] = []
    done = asyncio.Event()
    speech: list[str | bytes] = [b"\x01\x02" * 480, b"\x03\x04" * 480]

    async def handler(ws: Any) -> None:
        await ws.send('{"type": "session.created"}')
        async for message in ws:  # silence from the start, then the speech
            got.append(message)
            if message == speech[1]:
                await ws.send(b"\x00" * 480)  # reply audio: wakes nobody waiting for a JSON event
                await ws.send('{"type": "response.done", "response": {"id": "r"}}')
                done.set()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        session = Session(f"ws://127.0.0.1:{port}", wire="binary", compression=None)
        await session.start()
        try:
            assert session.direct
            first, last = session.enqueue(speech)
            finished = await session.wait_for("response.done", after=0, limit_s=10)
            assert finished.data["response"]["id"] == "r"
            await asyncio.wait_for(done.wait(), 10)
            assert speech[0] in got and speech[1] in got
            assert got.index(speech[0]) + 1 == got.index(speech[1])
            assert last == first + 1 and len(session.sent_at) >= last + 1
            assert [r.type for r in session.events] == ["session.created", "audio", "response.done"]
            with pytest.raises(TimeoutError):
                await session.wait_for("never", limit_s=0.05)
        finally:
            await session.close()


async def test_a_deflate_session_sends_through_websockets() -> None:
    got: list[bytes | str] = []

    async def handler(ws: Any) -> None:
        await ws.send('{"type": "session.created"}')
        async for message in ws:
            got.append(message)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        session = Session(f"ws://127.0.0.1:{port}", wire="binary")
        await session.start()
        try:
            assert not session.direct  # permessage-deflate: each frame depends on the last
            _, last = session.enqueue([b"\x05\x06" * 480])
            await session.sent(last, limit_s=10)
        finally:
            await session.close()
    assert b"\x05\x06" * 480 in got


def test_underruns_look_at_the_window_only() -> None:
    session = Session("ws://unused")

    def audio(at: float, rid: str) -> Received:
        return Received(at, "audio", {"response_id": rid, "bytes": 4800})

    # Reply a runs across the window's start and stalls inside it; reply b starts inside it.
    session.events = [audio(0.0, "a"), Received(0.05, "x", {}), audio(5.0, "a")]
    session.events += [audio(6.0, "b"), audio(6.5, "b")]
    assert capacity.underruns(session, after=1) == 1  # b's gap; a began before the window
    assert capacity.underruns(session) == 2


def _step(*, passed: bool, client_bound: bool) -> dict[str, Any]:
    return {"passed": passed, "client_bound": client_bound}


def test_what_limited_a_ramp() -> None:
    assert capacity.limited_by(None) is None
    assert capacity.limited_by(_step(passed=True, client_bound=False)) == "steps"
    assert capacity.limited_by(_step(passed=False, client_bound=False)) == "server"
    # A window where the client fell behind says nothing about the server, passed or not.
    assert capacity.limited_by(_step(passed=False, client_bound=True)) == "client"
    assert capacity.limited_by(_step(passed=True, client_bound=True)) == "client"


def test_the_gc_watch_records_the_clients_collections() -> None:
    watch = capacity.GCWatch()
    try:
        gc.collect(0)
    finally:
        watch.remove()
    assert watch.events and watch.events[-1][0] == "gc" and watch.events[-1][3] == 0
    gc.collect(0)
    count = len(watch.events)
    gc.collect(0)
    assert len(watch.events) == count  # removed: no longer called


def test_a_traced_turn_splits_into_hops_that_add_up() -> None:
    from hark.bench.hops import HOPS, split
    from hark.bench.overhead import Turn

    turn = Turn("hark", 0.0, ok=True, scripted_ms=420.0, decision_at=10.0, audio_at=10.4262)
    events = [
        ["rx", 9.98],  # an earlier frame
        ["rx", 10.0003],
        ["lag", 10.001, 0.1],
        ["push", 10.0005, 10.0015],
        ["queued", 10.4235],
        ["tx", 10.4245],
        ["queued", 10.5],
    ]
    hops = split(turn, events)
    assert hops is not None and list(hops) == list(HOPS)
    assert hops["in_socket"] == pytest.approx(0.3)
    assert hops["listener"] == pytest.approx(1.0)
    assert hops["pipeline"] == pytest.approx(2.0)  # 422 ms less the fakes' 420
    assert sum(hops.values()) == pytest.approx((10.4262 - 10.0) * 1000 - 420)
    assert split(turn, [e for e in events if e[0] != "push"]) is None


def test_the_pipeline_hop_splits_where_the_fakes_start_their_clocks() -> None:
    from hark.bench.fakes import Script
    from hark.bench.hops import HOPS, PIPELINE_PARTS, split
    from hark.bench.overhead import Turn

    script = Script(stt_final_ms=0.0, llm_first_token_ms=200.0, llm_token_ms=20.0, tts_first_audio_ms=100.0)
    turn = Turn("hark", 0.0, ok=True, scripted_ms=420.0, decision_at=10.0, audio_at=10.4262)
    events = [
        ["rx", 10.0003],
        ["push", 10.0005, 10.0015],
        ["llm", 10.0020],  # 0.5 ms after the turn's end
        ["tts", 10.3227],  # "today." is cut when token 6 comes, due at 10.322: 0.7 ms later
        ["queued", 10.4235],  # the first audio was due at 10.4227: 0.8 ms later
        ["tx", 10.4245],
    ]
    hops = split(turn, events, script)
    assert hops is not None and list(hops) == [*HOPS, *PIPELINE_PARTS]
    assert hops["to_llm"] == pytest.approx(0.5)
    assert hops["to_tts"] == pytest.approx(0.7)
    assert hops["to_outbox"] == pytest.approx(0.8)
    assert hops["to_llm"] + hops["to_tts"] + hops["to_outbox"] == pytest.approx(hops["pipeline"])
