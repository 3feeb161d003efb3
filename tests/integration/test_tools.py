"""Tool calling through the LLM interface: the current_time tool, then the spoken answer."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
import websockets

from tests.integration.test_bad_input import recv_until
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer


@pytest.fixture(scope="module")
def llm_with_tool() -> Iterator[tuple[FakeChatLLM, HarkProcess]]:
    llm = FakeChatLLM(
        tool_call=("current_time", '{"timezone": "Europe/Paris"}'), tool_reply="It is {result}."
    )
    with ThreadedServer(llm.app()) as server:
        env = {"HARK_LLM_BASE_URL": server.base_url + "/v1", "HARK_CONVERSATION_TOOLS": '["current_time"]'}
        with HarkProcess(env=env) as hark:
            yield llm, hark


async def test_tool_call_runs_once_and_its_answer_is_spoken(
    llm_with_tool: tuple[FakeChatLLM, HarkProcess],
) -> None:
    llm, hark = llm_with_tool
    async with websockets.connect(hark.ws_url) as ws:
        await recv_until(ws, "session.created")
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "What time is it?"}],
        }
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await ws.send(json.dumps({"type": "response.create"}))
        done = await recv_until(ws, "response.done", timeout=30)
    spoken = done["response"]["output"][0]["content"][0]["transcript"]
    year = str(dt.datetime.now(dt.UTC).year)
    assert spoken.startswith("It is ") and year in spoken and "(Europe/Paris)" in spoken
    assert len(llm.requests) == 2, "one request that asked for the tool, one that answered"
    first, second = (r["body"] for r in llm.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["current_time"]
    assistant, tool = second["messages"][-2:]
    assert assistant["tool_calls"][0]["function"] == {
        "name": "current_time",
        "arguments": '{"timezone": "Europe/Paris"}',
    }
    assert tool == {"role": "tool", "content": tool["content"], "tool_call_id": "call_fake_1"}
    assert year in tool["content"]
