"""The same question, sent as a first turn after different leading silences, is heard the same
(the turn's audio is cut on the VAD's 32 ms grid; the STT input must not depend on where).
Real server, real models; one session per offset."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from tests.servers import HarkProcess
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

FRAME_BYTES = 24_000 * 2 * 40 // 1000  # 40 ms at 24 kHz
QUESTION = "What is the capital of France?"
OFFSETS_MS = (500, 505, 516, 4010)


async def heard_after(server: HarkProcess, lead_ms: int) -> str:
    pcm = silence(lead_ms) + speak(QUESTION) + silence(1200)
    async with websockets.connect(server.ws_url + "&audio=binary", max_size=None) as ws:

        async def transcript() -> str:
            async with asyncio.timeout(60):
                while True:
                    raw = await ws.recv()
                    if isinstance(raw, bytes):
                        continue
                    event: dict[str, Any] = json.loads(raw)
                    if event["type"] == "conversation.item.input_audio_transcription.completed":
                        return str(event["transcript"])

        listening = asyncio.create_task(transcript())
        for offset in range(0, len(pcm), FRAME_BYTES):
            await ws.send(pcm[offset : offset + FRAME_BYTES])
            await asyncio.sleep(0.02)  # twice real time, the server's default speed limit
        return await listening


async def test_the_question_is_heard_alike_after_any_leading_silence(hark_server: HarkProcess) -> None:
    heard = [await heard_after(hark_server, ms) for ms in OFFSETS_MS]
    assert len(set(heard)) == 1, dict(zip(OFFSETS_MS, heard, strict=True))
    assert "capital" in heard[0].lower()
