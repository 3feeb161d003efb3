"""Malformed events and odd audio get clear error events; the session and the server survive."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
import websockets

from tests.servers import HarkProcess
from tests.speech import silence, speak

pytestmark = pytest.mark.slow


async def recv_until(ws: Any, kind: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


BAD_EVENTS: list[tuple[str, str | bytes, str]] = [
    ("not json", "{this is not json", "invalid_json"),
    ("json array", "[1, 2, 3]", "invalid_json"),
    ("no type", json.dumps({"event_id": "e1"}), "missing_required_parameter"),
    ("unknown type", json.dumps({"type": "nope.nope", "event_id": "e2"}), "unknown_event_type"),
    (
        "audio not a string",
        json.dumps({"type": "input_audio_buffer.append", "audio": 12, "event_id": "e3"}),
        "invalid_value",
    ),
    (
        "invalid base64",
        json.dumps({"type": "input_audio_buffer.append", "audio": "!!!", "event_id": "e4"}),
        "invalid_value",
    ),
    (
        "odd-length pcm",
        json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(b"abc").decode(),
                "event_id": "e5",
            }
        ),
        "invalid_value",
    ),
    (
        "negative audio_end_ms",
        json.dumps(
            {"type": "conversation.item.truncate", "item_id": "x", "audio_end_ms": -5, "event_id": "e6"}
        ),
        "invalid_value",
    ),
    (
        "unknown item",
        json.dumps(
            {"type": "conversation.item.truncate", "item_id": "x", "audio_end_ms": 5, "event_id": "e7"}
        ),
        "item_not_found",
    ),
    (
        "unsupported sample rate",
        json.dumps(
            {
                "type": "session.update",
                "event_id": "e8",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 7000}}},
                },
            }
        ),
        "unsupported_audio_format",
    ),
    ("huge string", json.dumps({"type": "x" * 100_000, "event_id": "e9"}), "unknown_event_type"),
    (
        "deep nesting",
        '{"type": "session.update", "event_id": "e10", "session": ' + "[" * 5000 + "]" * 5000 + "}",
        "invalid_json",
    ),
    (
        "empty commit",
        json.dumps({"type": "input_audio_buffer.commit", "event_id": "e11"}),
        "input_audio_buffer_commit_empty",
    ),
    (
        "cancel with nothing running",
        json.dumps({"type": "response.cancel", "event_id": "e12"}),
        "response_cancel_not_active",
    ),
    ("odd-length binary frame", b"\x00\x01\x02", "invalid_value"),
]


async def test_each_bad_event_gets_an_error_and_the_session_survives(hark_server: HarkProcess) -> None:
    async with websockets.connect(hark_server.ws_url, max_size=None) as ws:
        await recv_until(ws, "session.created")
        for name, payload, code in BAD_EVENTS:
            await ws.send(payload)
            error = (await recv_until(ws, "error"))["error"]
            assert error["code"] == code, name
            assert error["message"], name
            sent_id = None
            if isinstance(payload, str):
                try:
                    sent_id = json.loads(payload).get("event_id")
                except (ValueError, AttributeError, RecursionError):
                    sent_id = None
            if sent_id is not None and code != "invalid_json":
                assert error["event_id"] == sent_id, name
        # Still a working session: the configuration round-trips and speech is still heard.
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        updated = await recv_until(ws, "session.updated")
        assert updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        pcm = silence(300) + speak("Please call my mother tomorrow morning.") + silence(1000)
        for offset in range(0, len(pcm), 9600):
            chunk = base64.b64encode(pcm[offset : offset + 9600]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        final = await recv_until(ws, "conversation.item.input_audio_transcription.completed", timeout=30)
        assert "mother" in final["transcript"].lower()


async def test_odd_audio_is_handled(hark_server: HarkProcess) -> None:
    """Empty appends, one-sample appends and pure silence are accepted without a turn or an error."""
    async with websockets.connect(hark_server.ws_url) as ws:
        await recv_until(ws, "session.created")
        for audio in ["", base64.b64encode(b"\x01\x00").decode(), base64.b64encode(silence(2000)).decode()]:
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        await ws.send(json.dumps({"type": "input_audio_buffer.clear", "event_id": "c1"}))
        cleared = await recv_until(ws, "input_audio_buffer.cleared")
        assert cleared["type"] == "input_audio_buffer.cleared"
        # A manual commit of nothing is refused with the OpenAI error code; the socket stays open.
        await ws.send(json.dumps({"type": "input_audio_buffer.commit", "event_id": "c2"}))
        error = (await recv_until(ws, "error"))["error"]
        assert (error["code"], error["event_id"]) == ("input_audio_buffer_commit_empty", "c2")
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        assert (await recv_until(ws, "session.updated"))["type"] == "session.updated"


async def test_text_item_then_response_create(hark_server: HarkProcess) -> None:
    """Typed input through conversation.item.create is answered like speech (echo mode here)."""
    async with websockets.connect(hark_server.ws_url) as ws:
        await recv_until(ws, "session.created")
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Good morning"}],
        }
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        added = await recv_until(ws, "conversation.item.added")
        assert added["item"]["content"][0]["text"] == "Good morning"
        await ws.send(json.dumps({"type": "response.create"}))
        done = await recv_until(ws, "response.done", timeout=20)
        assert done["response"]["status"] == "completed"
        assert (
            done["response"]["output"][0]["content"][0]["transcript"] == "Echo mode. You said: Good morning"
        )
