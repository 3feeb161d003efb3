"""The admin API: authenticated, shows provider status, reorders the LLM chain at run time."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.integration.test_bad_input import recv_until
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer

ADMIN_KEY = "admin-secret-for-tests"


@pytest.fixture(scope="module")
def hark_two_llms() -> Iterator[HarkProcess]:
    first, second = FakeChatLLM(reply="From the first."), FakeChatLLM(reply="From the second.")
    with ThreadedServer(first.app()) as one, ThreadedServer(second.app()) as two:
        providers = [
            {"kind": "openai", "name": "first", "base_url": one.base_url + "/v1"},
            {"kind": "vllm", "name": "second", "base_url": two.base_url + "/v1"},
        ]
        env = {"HARK_LLM_PROVIDERS": json.dumps(providers), "HARK_SERVER_ADMIN_KEY": ADMIN_KEY}
        with HarkProcess(env=env) as server:
            yield server


async def ask(server: HarkProcess, text: str) -> str:
    async with websockets.connect(server.ws_url) as ws:
        await recv_until(ws, "session.created")
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await ws.send(json.dumps({"type": "response.create"}))
        done = await recv_until(ws, "response.done", timeout=30)
        return str(done["response"]["output"][0]["content"][0]["transcript"])


async def test_admin_requires_the_key(hark_two_llms: HarkProcess) -> None:
    async with httpx.AsyncClient(base_url=hark_two_llms.base_url) as http:
        assert (await http.get("/admin/providers")).status_code == 401
        wrong = await http.get("/admin/providers", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        body = {"order": ["second", "first"]}
        assert (await http.put("/admin/llm/order", json=body)).status_code == 401


async def test_reorder_llm_at_run_time(hark_two_llms: HarkProcess) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert await ask(hark_two_llms, "hello") == "From the first."
    async with httpx.AsyncClient(base_url=hark_two_llms.base_url, headers=headers) as http:
        status = (await http.get("/admin/providers")).json()
        assert [p["name"] for p in status["llm"]] == ["first", "second"]
        assert status["llm"][0]["successes"] >= 1 and status["llm"][0]["circuit"] == "closed"
        assert [p["kind"] for p in status["stt"]] == ["faster-whisper"]
        bad = await http.put("/admin/llm/order", json={"order": ["second"]})
        assert bad.status_code == 422 and "each provider once" in bad.json()["detail"]
        ok = await http.put("/admin/llm/order", json={"order": ["second", "first"]})
        assert ok.status_code == 200
    assert await ask(hark_two_llms, "hello again") == "From the second."


async def test_admin_is_off_without_a_key(hark_server: HarkProcess) -> None:
    async with httpx.AsyncClient(base_url=hark_server.base_url) as http:
        response = await http.get("/admin/providers", headers={"Authorization": "Bearer x"})
    assert response.status_code == 404 and "server.admin_key" in response.json()["detail"]
