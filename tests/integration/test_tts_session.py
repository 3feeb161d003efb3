"""Incremental TTS sessions: text appended in pieces comes back as continuous audio."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
import websockets

from tests.servers import HarkProcess

pytestmark = pytest.mark.slow


def url(server: HarkProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/tts/sessions"


async def read_all(ws: Any, timeout: float = 60) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for message in ws:
            events.append(json.loads(message))
            if events[-1]["type"] == "session.closed":
                break
    return events


async def test_appended_pieces_come_back_as_audio_in_order(hark_server: HarkProcess) -> None:
    async with websockets.connect(url(hark_server)) as ws:
        created = json.loads(await ws.recv())
        assert created["type"] == "session.created" and created["sample_rate"] == 24_000
        for piece in ["Hello there, this is the first piece. ", "And here is", " the second piece."]:
            await ws.send(json.dumps({"type": "input_text.append", "text": piece}))
        await ws.send(json.dumps({"type": "session.close"}))
        events = await read_all(ws)
    audio = [e for e in events if e["type"] == "audio.delta"]
    segments = [e["segment"] for e in events if e["type"] == "segment.done"]
    # One segment per sentence inside an append; appends are never joined ("And here is" alone).
    assert segments == [0, 1, 2]
    assert [a["segment"] for a in audio] == sorted(a["segment"] for a in audio)
    pcm = b"".join(base64.b64decode(a["audio"]) for a in audio)
    assert len(pcm) % 2 == 0 and len(pcm) / 2 / 24_000 > 2.0
    assert events[-1] == {"type": "session.closed", "reason": "closed"}


async def test_cancel_stops_at_once(hark_server: HarkProcess) -> None:
    text = " ".join(
        f"This is sentence number {n} of a long text that would take a while to speak." for n in range(30)
    )
    async with websockets.connect(url(hark_server)) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "input_text.append", "text": text[:4000]}))
        while json.loads(await ws.recv())["type"] != "audio.delta":
            pass
        started = time.monotonic()
        await ws.send(json.dumps({"type": "session.cancel"}))
        events = await read_all(ws, timeout=10)
        took = time.monotonic() - started
    done = [e for e in events if e["type"] == "segment.done"]
    assert events[-1] == {"type": "session.closed", "reason": "cancelled"}
    assert len(done) < 5, "most of the text was never spoken"
    print(f"\ncancel → session.closed in {took * 1000:.0f} ms")
    assert took < 1.0


async def test_bad_events_get_errors(hark_server: HarkProcess) -> None:
    async with websockets.connect(url(hark_server)) as ws:
        await ws.recv()
        await ws.send("not json")
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and error["error"]["code"] == "invalid_event"
        await ws.send(json.dumps({"type": "input_text.append", "text": "x" * 5000, "event_id": "big"}))
        error = json.loads(await ws.recv())
        assert error["error"]["code"] == "invalid_event"
        await ws.send(json.dumps({"type": "input_text.append", "text": "Still here."}))
        await ws.send(json.dumps({"type": "session.close"}))
        events = await read_all(ws)
    assert any(e["type"] == "audio.delta" for e in events)
