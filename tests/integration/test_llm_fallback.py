"""A voice turn through the Realtime endpoint with llm.providers = [stalled, working]."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.realtime_client import realtime, send_audio
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

STALL_BUDGET = 1.5


@pytest.fixture(scope="module")
def two_llms() -> Iterator[tuple[FakeChatLLM, ThreadedServer, FakeChatLLM, ThreadedServer]]:
    stalled = FakeChatLLM(reply="You should never hear this.", stall=True)
    working = FakeChatLLM(reply="The working model answers. It is sunny in Paris.")
    with ThreadedServer(stalled.app()) as stalled_server, ThreadedServer(working.app()) as working_server:
        yield stalled, stalled_server, working, working_server


async def test_stalled_provider_is_skipped_and_the_next_turn_is_faster(
    two_llms: tuple[FakeChatLLM, ThreadedServer, FakeChatLLM, ThreadedServer], tmp_path: object
) -> None:
    stalled, stalled_server, working, working_server = two_llms
    providers = [
        {
            "kind": "openai",
            "name": "stalled",
            "base_url": stalled_server.base_url + "/v1",
            "timeout": STALL_BUDGET,
        },
        {"kind": "openai", "name": "working", "base_url": working_server.base_url + "/v1", "timeout": 5},
    ]
    env = {"HARK_LLM_PROVIDERS": json.dumps(providers), "HARK_FALLBACK_PROBE_INTERVAL_S": "600"}
    with HarkProcess(env=env) as server:
        ttft = []
        async with realtime(server.base_url) as (conn, rec):
            for question in (
                "What is the weather like in Paris today?",
                "Please call my mother tomorrow morning.",
            ):
                mark = rec.mark()
                await send_audio(conn, silence(300) + speak(question) + silence(1000), realtime_pace=False)
                done = await rec.wait_for("response.done", after=mark, timeout=60)
                latency = await rec.wait_for("hark.latency", after=mark)
                assert done.response.status == "completed"
                assert done.response.output[0].content[0].transcript == working.reply
                ttft.append(latency.llm_ttft_ms / 1000)
    print(
        f"\nLLM first token: turn 1 {ttft[0]:.2f} s (stall budget {STALL_BUDGET} s), turn 2 {ttft[1]:.2f} s"
    )
    assert STALL_BUDGET * 0.8 <= ttft[0] <= STALL_BUDGET * 1.2 + 0.5
    assert ttft[1] <= ttft[0] - STALL_BUDGET * 0.8
    assert len(stalled.requests) == 1, "the second turn skipped the stalled provider"
    assert len(working.requests) == 2
