"""The page against a scripted realtime server: the client side of the protocol, barge-in above all.

The server here plays a long reply, then reports that the user started speaking while it is
still playing. The page must silence the reply at once, drop the audio still arriving for it,
and send ``conversation.item.truncate`` with the milliseconds actually played. When the server
then finds the speech was no interruption ("mhm": ``hark.output_resumed``), the page plays the
reply on from where it stopped.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.browser.page_server import page_app
from tests.servers import ThreadedServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

RATE = 24000
CHUNK_MS = 100
LEAD_MS = 600
REPLY_MS = 4000
BARGE_IN_AFTER_S = 1.5
LLM_MESSAGE = "Answering with stand-in (scripted test server)."


def _sine_chunk(index: int) -> str:
    n = RATE * CHUNK_MS // 1000
    start = index * n
    samples = [round(0.3 * 32767 * math.sin(2 * math.pi * 330 * (start + i) / RATE)) for i in range(n)]
    return base64.b64encode(b"".join(s.to_bytes(2, "little", signed=True) for s in samples)).decode()


class ScriptedServer:
    """One scripted conversation per connection; records what the client sent."""

    def __init__(self, *, resume: bool = False) -> None:
        self.resume = resume
        """True: the speech over the reply is a backchannel, and the reply goes on after it."""
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.truncated = asyncio.Event()
        self.late_audio_sent = 0

    def client_events(self, type_: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.received if type_ is None or e.get("type") == type_]

    def app(self) -> Starlette:
        return page_app(WebSocketRoute("/v1/realtime", self.realtime))

    async def realtime(self, ws: WebSocket) -> None:
        await ws.accept()
        self.truncated = asyncio.Event()
        session_updated = asyncio.Event()
        counter = 0

        async def send(event: dict[str, Any]) -> None:
            nonlocal counter
            counter += 1
            await ws.send_text(json.dumps({"event_id": f"event_{counter}", **event}))

        async def reader() -> None:
            try:
                while True:
                    event = json.loads(await ws.receive_text())
                    with self.lock:
                        self.received.append(event)
                    if event.get("type") == "session.update":
                        session_updated.set()
                    if event.get("type") == "conversation.item.truncate":
                        self.truncated.set()
            except WebSocketDisconnect:
                pass

        reading = asyncio.create_task(reader())
        try:
            await send({"type": "session.created", "session": {"type": "realtime", "id": "sess_test"}})
            await send({"type": "hark.llm_status", "mode": "llm", "message": LLM_MESSAGE, "setting": None})
            await asyncio.wait_for(session_updated.wait(), 10)
            await send({"type": "session.updated", "session": {"type": "realtime", "id": "sess_test"}})
            await self.reply_then_barge_in(send)
            await reading
        finally:
            reading.cancel()

    async def reply_then_barge_in(self, send: Callable[[dict[str, Any]], Any]) -> None:
        part = {"response_id": "resp_1", "item_id": "item_1", "output_index": 0, "content_index": 0}
        await send({"type": "hark.state", "state": "thinking"})
        await send({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}})
        await send(
            {
                "type": "response.output_item.added",
                "response_id": "resp_1",
                "output_index": 0,
                "item": {"id": "item_1", "type": "message", "role": "assistant"},
            }
        )
        await send(
            {"type": "response.output_audio_transcript.delta", **part, "delta": "This reply is long, "}
        )
        await send({"type": "hark.state", "state": "speaking"})
        started = time.monotonic()
        sent = 0
        # Audio runs LEAD_MS ahead of real time, as hark sends it.
        while time.monotonic() - started < BARGE_IN_AFTER_S:
            due = (time.monotonic() - started) * 1000 + LEAD_MS
            while sent * CHUNK_MS < min(due, REPLY_MS):
                await send({"type": "response.output_audio.delta", **part, "delta": _sine_chunk(sent)})
                sent += 1
            await asyncio.sleep(0.02)
        await send({"type": "response.output_audio_transcript.delta", **part, "delta": "so it gets cut off."})
        await send(
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": 5000, "item_id": "item_user"}
        )
        await send({"type": "hark.state", "state": "listening"})
        # Audio of the interrupted reply that was already on its way: the client must drop it.
        for _ in range(3):
            await send({"type": "response.output_audio.delta", **part, "delta": _sine_chunk(sent)})
            sent += 1
            self.late_audio_sent += 1
        await asyncio.wait_for(self.truncated.wait(), 10)
        truncate = self.client_events("conversation.item.truncate")[0]
        if self.resume:
            await self.resume_after_backchannel(send, part, truncate["audio_end_ms"])
            return
        await send(
            {
                "type": "response.done",
                "response": {
                    "id": "resp_1",
                    "status": "cancelled",
                    "status_details": {"reason": "turn_detected"},
                },
            }
        )
        await send(
            {
                "type": "conversation.item.truncated",
                "item_id": truncate["item_id"],
                "content_index": 0,
                "audio_end_ms": truncate["audio_end_ms"],
            }
        )
        await send(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 6000, "item_id": "item_user"}
        )
        await send(
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": "item_user",
                "content_index": 0,
                "delta": "Stop",
                "transcript": "Stop",
            }
        )
        await send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "item_user",
                "content_index": 0,
                "transcript": "Stop please.",
            }
        )
        await send({"type": "hark.state", "state": "idle"})

    async def resume_after_backchannel(
        self, send: Callable[[dict[str, Any]], Any], part: dict[str, Any], played_ms: int
    ) -> None:
        """What hark sends for "mhm" over its reply: paused at the playhead, the speech ignored,
        resumed, and the rest of the reply sent again from where the listener stopped hearing it."""
        await send({"type": "hark.output_paused", **_ids(part), "audio_ms": played_ms})
        await send(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 5400, "item_id": "item_user"}
        )
        await send({"type": "hark.speech_ignored", "item_id": "item_user", "reason": "backchannel"})
        await send({"type": "hark.output_resumed", **_ids(part), "audio_ms": played_ms})
        await send({"type": "hark.state", "state": "speaking"})
        for index in range(played_ms // CHUNK_MS, REPLY_MS // CHUNK_MS):
            await send({"type": "response.output_audio.delta", **part, "delta": _sine_chunk(index)})
            await asyncio.sleep(CHUNK_MS / 1000 / 2)
        await send({"type": "response.output_audio.done", **part})
        await send({"type": "response.done", "response": {"id": "resp_1", "status": "completed"}})


def _ids(part: dict[str, Any]) -> dict[str, Any]:
    return {"response_id": part["response_id"], "item_id": part["item_id"]}


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedServer, str]]:
    script = ScriptedServer()
    with ThreadedServer(script.app()) as server:
        yield script, server.base_url


@pytest.fixture
def scripted_backchannel() -> Iterator[tuple[ScriptedServer, str]]:
    script = ScriptedServer(resume=True)
    with ThreadedServer(script.app()) as server:
        yield script, server.base_url


def _start_page(
    launch_chromium: Callable[..., Browser], watch_errors: Callable[[Page], list[str]], base_url: str
) -> tuple[Page, list[str]]:
    """The page against the scripted server, started (the microphone a fake device)."""
    browser = launch_chromium("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    page = browser.new_context(permissions=["microphone"]).new_page()
    errors = watch_errors(page)
    page.goto(base_url + "/")
    page.get_by_test_id("start-button").click()
    return page, errors


def test_barge_in_silences_the_reply_and_truncates_to_what_was_played(
    chromium_path: str,
    launch_chromium: Callable[..., Browser],
    watch_errors: Callable[[Page], list[str]],
    scripted: tuple[ScriptedServer, str],
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    script, base_url = scripted
    page, errors = _start_page(launch_chromium, watch_errors, base_url)

    page.wait_for_function("() => window.hark.truncations.length > 0", timeout=20_000)
    played_at_barge_in = page.evaluate("() => window.hark.playedMs")
    page.wait_for_timeout(600)
    hark = page.evaluate("() => JSON.parse(JSON.stringify(window.hark))")

    # The page told the server how much of the reply the user heard...
    truncates = script.client_events("conversation.item.truncate")
    assert len(truncates) == 1
    truncate = truncates[0]
    assert truncate["item_id"] == "item_1"
    assert truncate["content_index"] == 0
    assert isinstance(truncate["audio_end_ms"], int)
    assert truncate["event_id"]
    # ...which is about the time the reply had been playing (less the small start-up buffer).
    assert 900 <= truncate["audio_end_ms"] <= BARGE_IN_AFTER_S * 1000 + 200, truncate
    assert hark["playedMsByItem"]["item_1"] == truncate["audio_end_ms"]

    # Playback stopped at once and stayed silent: the late audio was received but never played.
    assert hark["playedMs"] == played_at_barge_in
    chunk_bytes = RATE * CHUNK_MS // 1000 * 2
    assert hark["receivedAudioBytes"] % chunk_bytes == 0
    assert hark["receivedAudioBytes"] >= chunk_bytes * (
        BARGE_IN_AFTER_S * 1000 // CHUNK_MS + script.late_audio_sent
    )

    # The client side of the protocol: session.update first, then 40 ms PCM16 appends.
    sent = script.client_events()
    assert sent[0]["type"] == "session.update"
    assert sent[0]["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert sent[0]["session"]["audio"]["input"]["turn_detection"] == {"type": "server_vad"}
    appends = script.client_events("input_audio_buffer.append")
    assert len(appends) > 10
    assert {len(base64.b64decode(a["audio"])) for a in appends} == {1920}
    assert all(e.get("event_id") for e in sent)

    # What the user sees.
    assistant = page.get_by_test_id("transcript-assistant")
    expect(assistant).to_have_count(1)
    expect(assistant).to_have_attribute("data-state", "interrupted")
    expect(assistant).to_contain_text("This reply is long, so it gets cut off.")
    expect(assistant).to_contain_text("Interrupted at")
    user = page.get_by_test_id("transcript-user")
    expect(user).to_have_count(1)
    expect(user).to_have_attribute("data-final", "true")
    expect(user.get_by_test_id("transcript-user-text")).to_have_text("Stop please.")
    expect(page.get_by_test_id("state-indicator")).to_have_attribute("data-state", "idle")
    expect(page.get_by_test_id("llm-banner")).to_be_hidden()
    expect(page.get_by_test_id("llm-mode")).to_have_text("LLM")
    page.screenshot(path=str(tmp_path / "barge-in.png"))

    page.get_by_test_id("start-button").click()
    expect(page.get_by_test_id("start-button")).to_have_text("Start")
    assert errors == [], errors


def test_a_reply_resumed_after_a_backchannel_plays_on(
    chromium_path: str,
    launch_chromium: Callable[..., Browser],
    watch_errors: Callable[[Page], list[str]],
    scripted_backchannel: tuple[ScriptedServer, str],
) -> None:
    script, base_url = scripted_backchannel
    page, errors = _start_page(launch_chromium, watch_errors, base_url)

    # Speech over the reply silences it at once, as any barge-in does...
    page.wait_for_function("() => window.hark.truncations.length > 0", timeout=20_000)
    stopped_at = script.client_events("conversation.item.truncate")[0]["audio_end_ms"]
    # ...and once the server says it was no interruption, the rest of the reply is played.
    page.wait_for_function(
        f"() => (window.hark.playedMsByItem.item_1 || 0) >= {stopped_at} + 1500", timeout=20_000
    )
    page.wait_for_function("() => !window.hark.playing", timeout=10_000)
    played = page.evaluate("() => window.hark.playedMsByItem.item_1")
    # Nothing played twice, nothing skipped: the whole reply, give or take the start-up buffer.
    assert REPLY_MS - 300 <= played <= REPLY_MS + 100, (stopped_at, played)
    assert errors == [], errors
