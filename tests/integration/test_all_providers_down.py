"""All STT providers down: each turn ends with an error event quickly; the session stays open;
after more than three failures in a row it closes with a stated reason."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.realtime_client import realtime, send_audio
from tests.servers import HarkProcess, free_port
from tests.speech import silence, speak

pytestmark = pytest.mark.slow


async def test_failing_turns_report_errors_then_the_session_closes(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    providers = [{"kind": "openai", "name": "down", "base_url": dead, "api_key": "x", "timeout": 2}]
    env = {"HARK_STT_PROVIDERS": json.dumps(providers), "HARK_WORKERS_ENABLED": "false"}
    with HarkProcess(env=env, log_path=tmp_path / "log.txt") as server:
        async with realtime(server.base_url) as (conn, rec):
            utterance = silence(200) + speak("Hello there, can you hear me?") + silence(800)
            for turn in range(4):
                mark = rec.mark()
                stopped_at = time.monotonic()
                await send_audio(conn, utterance, realtime_pace=False)
                failed = await rec.wait_for("conversation.item.input_audio_transcription.failed", after=mark)
                took = time.monotonic() - stopped_at
                assert "every stt provider failed: down (unavailable" in failed.error.message
                print(f"\nturn {turn + 1}: transcription failure reported after {took:.2f} s")
                assert took < 5
            error = await rec.wait_for("error", lambda e: e.error.code == "session_failed")
            assert "4 turns in a row failed" in error.error.message
            deadline = time.monotonic() + 5
            while rec.close_code is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert rec.close_code == 1011
