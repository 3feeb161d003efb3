"""``semantic_vad`` over the Realtime protocol: session.update reaches the listener, and the
session reports it in OpenAI's shape (validated against the SDK's models)."""

from __future__ import annotations

import asyncio
import base64

from tests.fakes import quiet, tone
from tests.unit.test_realtime_session import Backend, Wire, connect


async def append(wire: Wire, pcm: bytes) -> None:
    for i in range(0, len(pcm), 9600):  # 200 ms a message
        await wire.send(type="input_audio_buffer.append", audio=base64.b64encode(pcm[i : i + 9600]).decode())


async def test_semantic_vad_is_reported_and_switched_back() -> None:
    backend = Backend()
    async with connect(backend) as wire:
        detection = {"type": "semantic_vad", "eagerness": "high", "create_response": False}
        await wire.send(
            type="session.update",
            session={"type": "realtime", "audio": {"input": {"turn_detection": detection}}},
        )
        updated = (await wire.until("session.updated"))["session"]["audio"]["input"]["turn_detection"]
        assert updated["type"] == "semantic_vad" and updated["eagerness"] == "high"
        assert updated["create_response"] is False
        detection = {"type": "server_vad", "silence_duration_ms": 400}
        await wire.send(
            type="session.update",
            session={"type": "realtime", "audio": {"input": {"turn_detection": detection}}},
        )
        updated = (await wire.until("session.updated"))["session"]["audio"]["input"]["turn_detection"]
        assert updated["type"] == "server_vad" and updated["silence_duration_ms"] == 400


async def test_a_semantic_turn_outlasts_the_server_vad_silence() -> None:
    """Without a turn model (the fakes have none) a semantic turn ends on its eagerness's longest
    silence (1000 ms for high), where server_vad (200 ms in the fakes) would have ended it."""
    backend = Backend()
    async with connect(backend) as wire:
        detection = {"type": "semantic_vad", "eagerness": "high", "create_response": False}
        await wire.send(
            type="session.update",
            session={"type": "realtime", "audio": {"input": {"turn_detection": detection}}},
        )
        await wire.until("session.updated")
        await append(wire, tone(600) + quiet(400))
        await wire.until("input_audio_buffer.speech_started")
        await asyncio.sleep(1.0)  # every frame sent so far has been heard
        await wire.send(type="session.update", session={"type": "realtime"})
        await wire.until("session.updated")  # processed after all the audio above
        assert not wire.of("input_audio_buffer.speech_stopped"), "the turn ended inside a 400 ms pause"
        await append(wire, quiet(900))
        stopped = await wire.until("input_audio_buffer.speech_stopped")
        assert 500 <= stopped["audio_end_ms"] <= 700  # where the silence began: after the 600 ms tone
