"""Resume through Redis: a session continues on a second hark instance with its token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.integration.test_bad_input import recv_until
from tests.redis_server import RedisServer
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_instances(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[FakeChatLLM, HarkProcess, HarkProcess]]:
    llm = FakeChatLLM(reply="Noted.")
    directory = tmp_path_factory.mktemp("redis")
    with RedisServer(directory) as redis, ThreadedServer(llm.app()) as llm_server:
        env = {
            "HARK_REDIS_URL": redis.url,
            "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
            "HARK_WORKERS_ENABLED": "false",
        }
        with HarkProcess(env=env) as first, HarkProcess(env=env) as second:
            yield llm, first, second


async def say(ws: Any, text: str) -> dict[str, Any]:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
    await ws.send(json.dumps({"type": "response.create"}))
    return await recv_until(ws, "response.done", timeout=30)


async def test_a_session_resumes_on_another_instance(
    two_instances: tuple[FakeChatLLM, HarkProcess, HarkProcess],
) -> None:
    llm, first, second = two_instances
    async with websockets.connect(first.ws_url + "&hark_events=1") as ws:
        await recv_until(ws, "session.created")
        token = (await recv_until(ws, "hark.resume_token"))["token"]
        await ws.send(
            json.dumps(
                {"type": "session.update", "session": {"type": "realtime", "instructions": "Be terse."}}
            )
        )
        await recv_until(ws, "session.updated")
        await say(ws, "My name is Ada.")
    async with websockets.connect(second.ws_url + "&hark_events=1") as ws:
        await recv_until(ws, "session.created")
        await ws.send(json.dumps({"type": "hark.resume", "token": token}))
        updated = await recv_until(ws, "session.updated")
        assert updated["session"]["instructions"] == "Be terse."
        resumed = await recv_until(ws, "hark.resumed")
        assert resumed["items"] == 2
        await recv_until(ws, "hark.resume_token")
        await say(ws, "What is my name?")
    messages = llm.requests[-1]["body"]["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("system", "Be terse."),
        ("user", "My name is Ada."),
        ("assistant", "Noted."),
        ("user", "What is my name?"),
    ]


async def test_a_used_or_unknown_token_is_refused(
    two_instances: tuple[FakeChatLLM, HarkProcess, HarkProcess],
) -> None:
    _, first, second = two_instances
    async with websockets.connect(first.ws_url + "&hark_events=1") as ws:
        await recv_until(ws, "session.created")
        token = (await recv_until(ws, "hark.resume_token"))["token"]
    async with websockets.connect(second.ws_url + "&hark_events=1") as ws:
        await recv_until(ws, "session.created")
        await ws.send(json.dumps({"type": "hark.resume", "token": token, "event_id": "r1"}))
        await recv_until(ws, "hark.resumed")
    for token_value in (token, "no-such-token"):
        async with websockets.connect(second.ws_url + "&hark_events=1") as ws:
            await recv_until(ws, "session.created")
            await ws.send(json.dumps({"type": "hark.resume", "token": token_value, "event_id": "r2"}))
            error = (await recv_until(ws, "error"))["error"]
            assert (error["code"], error["event_id"]) == ("resume_token_invalid", "r2")
            await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
            await recv_until(ws, "session.updated")  # the session carries on, fresh


async def test_resume_must_come_first(two_instances: tuple[FakeChatLLM, HarkProcess, HarkProcess]) -> None:
    _, first, _ = two_instances
    async with websockets.connect(first.ws_url + "&hark_events=1") as ws:
        await recv_until(ws, "session.created")
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        await ws.send(json.dumps({"type": "hark.resume", "token": "x"}))
        assert (await recv_until(ws, "error"))["error"]["code"] == "resume_not_first"


def test_ready_reports_redis(
    two_instances: tuple[FakeChatLLM, HarkProcess, HarkProcess], tmp_path: Path
) -> None:
    import httpx

    _, first, _ = two_instances
    body = httpx.get(first.base_url + "/ready").json()
    assert body["checks"]["redis"] is True
