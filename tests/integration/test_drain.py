"""SIGTERM drains: /ready turns 503, new sessions are refused, replies in progress finish,
sessions close with 1001, the process exits."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.realtime_client import realtime, send_audio
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

SESSIONS = 3


@pytest.fixture
def slow_llm() -> Iterator[ThreadedServer]:
    reply = " ".join(["This reply takes a few seconds to write."] * 6)
    with ThreadedServer(FakeChatLLM(reply=reply, token_delay=0.04).app()) as server:
        yield server


async def test_sigterm_lets_turns_finish_then_closes_with_1001(
    slow_llm: ThreadedServer, tmp_path: Path
) -> None:
    env = {"HARK_LLM_BASE_URL": slow_llm.base_url + "/v1", "HARK_SECURITY_DRAIN_TIMEOUT_S": "30"}
    server = HarkProcess(env=env, log_path=tmp_path / "log.txt")
    with server:
        assert server.process is not None
        speech = silence(300) + speak("What is the weather like in Paris today?") + silence(900)
        async with contextlib.AsyncExitStack() as stack:
            sessions = [await stack.enter_async_context(realtime(server.base_url)) for _ in range(SESSIONS)]
            await asyncio.gather(*(send_audio(conn, speech, realtime_pace=False) for conn, _ in sessions))
            for _, rec in sessions:
                await rec.wait_for("response.created", timeout=60)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                ready = await http.get("/ready")
            assert ready.status_code == 503 and ready.json()["checks"]["accepting"] is False
            print(f"\n/ready is 503 {1000 * (time.monotonic() - signalled):.0f} ms after SIGTERM")
            async with websockets.connect(server.ws_url) as refused:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await refused.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            for _, rec in sessions:
                done = await rec.wait_for("response.done", timeout=60)
                assert done.response.status == "completed", "a reply in progress was cut"
            exit_code = await asyncio.to_thread(server.process.wait, 60)
        took = time.monotonic() - signalled
        print(f"all {SESSIONS} replies finished; process exited {exit_code} {took:.1f} s after SIGTERM")
        assert exit_code == 0
        assert [rec.close_code for _, rec in sessions] == [1001] * SESSIONS
