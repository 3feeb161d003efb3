"""The OpenAI Agents SDK for JavaScript (@openai/agents-realtime, pinned in js/package-lock.json)
in Node, over its WebSocket transport: a typed turn that calls a client tool, a spoken turn, the
app trimming its history (updateHistory), a typed turn."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conformance import script
from tests.servers import FakeChatLLM, HarkProcess

pytestmark = pytest.mark.slow

JS = Path(__file__).parent / "js"


def require_node() -> str:
    node = shutil.which("node")
    installed = (JS / "node_modules" / "@openai" / "agents-realtime").is_dir()
    if node is None or not installed:
        if os.environ.get("CI"):
            raise RuntimeError("node or the JS Agents SDK is missing; `make test` installs them")
        pytest.skip("node or tests/conformance/js/node_modules is missing (make test installs them)")
    return node


async def test_a_tool_a_spoken_turn_and_a_trimmed_history(
    hark: HarkProcess, llm: FakeChatLLM, tmp_path: Path
) -> None:
    node = require_node()
    speech = tmp_path / "thanks.pcm"
    speech.write_bytes(script.spoken(script.THANKS))
    process = await asyncio.create_subprocess_exec(
        node,
        "conversation.mjs",
        hark.ws_url,
        str(speech),
        cwd=JS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 150)
    assert process.returncode == 0, err.decode()[-3000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    events = result["server_events"]
    kinds = [e["type"] for e in events]
    assert result["failure"] is None, f"{result['failure']}\nserver events: {kinds}"

    # No error reached the SDK, nor any error event on the wire.
    assert result["errors"] == []
    assert script.error_events(events) == []
    assert not [kind for kind in kinds if kind.startswith("hark.")], "hark's own events are opt-in"
    assert "conversation.item.retrieved" in kinds, "the SDK retrieves items on its own; hark answers"

    # The tool ran once, with the arguments the model gave, and its result was answered aloud.
    assert result["tool_calls"] == [json.loads(script.TOOL_ARGUMENTS)]
    calls = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    calls = [item for item in calls if item["type"] == "function_call"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [
        (script.TOOL_NAME, json.loads(script.TOOL_ARGUMENTS))
    ]
    assert "response.function_call_arguments.done" in kinds
    done = [e["response"] for e in events if e["type"] == "response.done"]
    assert [r["status"] for r in done] == ["completed"] * 4, "tool call, its answer, 2 more turns"
    spoken = [
        part.get("transcript") for r in done for item in r["output"] for part in item.get("content", [])
    ]
    assert script.TOOL_REPLY.format(result=script.TOOL_RESULT) in spoken
    assert script.SHORT_ANSWER in spoken
    assert [t["name"] for t in result["turns"]] == ["text+tool", "spoken", "text"]
    assert all(t["audio_bytes"] > 24_000 for t in result["turns"])

    # The spoken turn was heard.
    heard = [e["transcript"] for e in events if e["type"].endswith("input_audio_transcription.completed")]
    assert len(heard) == 1 and "thank" in heard[0].lower()

    # The same history on both sides, in the order it happened, without the trimmed turn. The SDK
    # keeps a function call's output on the call item: the server's output item has no twin.
    deleted = [e["item_id"] for e in events if e["type"] == "conversation.item.deleted"]
    assert len(deleted) == 2
    server = [i for i in script.server_order(events) if i["type"] != "function_call_output"]
    arrived = [i for i in script.arrival_order(events) if i in {s["id"] for s in server}]
    client = [item["id"] for item in result["history"]]
    assert client == [i["id"] for i in server] == arrived
    assert [(i["type"], i.get("role")) for i in server] == [
        ("message", "user"),
        ("function_call", None),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert not set(deleted) & set(client)

    # The LLM was sent that history too: the trimmed turn gone.
    said = [
        (m["role"], m.get("content")) for m in llm.requests[-1]["body"]["messages"] if m["role"] != "system"
    ]
    assert [role for role, _ in said] == ["user", "assistant", "tool", "assistant", "user"]
    assert said[-1] == ("user", "Tell me a joke.") and heard[0] not in {content for _, content in said}
    script.figures(
        "agents-js",
        turns=len(result["turns"]),
        turn_ms=[t["ms"] for t in result["turns"]],
        server_events=len(events),
        **script.latencies(events),
        seconds=round(result["seconds"], 1),
    )
