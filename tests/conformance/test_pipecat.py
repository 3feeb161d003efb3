"""Pipecat's OpenAIRealtimeLLMService (pipecat-ai, pinned in pyproject's `conformance` extra) in a
pipeline without a transport (pipecat_pipeline.py): a typed question that calls a registered tool,
then a spoken turn.

Pipecat treats almost any `error` event as fatal, and ignores a few at debug level, so the wire
between it and hark is read too (tap.py)."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.conformance import script
from tests.conformance.tap import tapped
from tests.servers import FakeChatLLM, HarkProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("pipecat") is None,
        reason="pip install -e '.[conformance]' (make test does)",
    ),
]


@pytest.fixture
def pipecat() -> Iterator[ModuleType]:
    """pipecat_pipeline.py, imported for this test only: on Python < 3.12 importing pipecat swaps
    asyncio.wait_for for wait_for2's, process-wide; the rest of the suite gets the standard one."""
    standard = asyncio.wait_for
    with warnings.catch_warnings():
        # pipecat.audio.utils imports audioop, deprecated since Python 3.11.
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module("tests.conformance.pipecat_pipeline")
    try:
        yield module
    finally:
        asyncio.wait_for = standard


async def test_a_conversation_with_a_tool_and_no_fatal_error(
    hark: HarkProcess, llm: FakeChatLLM, pipecat: ModuleType
) -> None:
    async with tapped(hark.ws_url) as wire:
        try:
            outcome = await pipecat.converse(
                wire.base + "/v1/realtime", lambda: len(wire.of("response.done"))
            )
        except TimeoutError as stuck:
            sent = [e.get("type") for e in wire.from_client]
            got = [e.get("type") for e in wire.from_server if e.get("type") != script.AUDIO_DELTA]
            raise AssertionError(f"{stuck}\nPipecat sent: {sent}\nhark sent: {got}") from stuck

    def responses_done() -> list[dict[str, Any]]:
        return [e["response"] for e in wire.of("response.done")]

    # No error reached the pipeline, and none went over the wire (not even one Pipecat ignores).
    assert outcome.errors == []
    assert wire.of("error") == []
    assert not [e for e in wire.from_server if e["type"].startswith("hark.")], "hark's own events are opt-in"
    assert wire.connections == 1

    # The registered tool ran once, with the model's arguments; its result was answered aloud.
    assert outcome.calls == [json.loads(script.TOOL_ARGUMENTS)]
    outputs = [e["item"] for e in wire.from_client if e.get("type") == "conversation.item.create"]
    outputs = [i for i in outputs if i.get("type") == "function_call_output"]
    assert [o["output"] for o in outputs] == [json.dumps(script.TOOL_RESULT)]  # Pipecat sends JSON
    call, answer, spoken = responses_done()
    assert [i["type"] for i in call["output"]] == ["function_call"]
    assert [o["call_id"] for o in outputs] == [call["output"][0]["call_id"]]
    heard_answer = [p.get("transcript") for i in answer["output"] for p in i.get("content") or []]
    assert heard_answer == [script.TOOL_REPLY.format(result=json.dumps(script.TOOL_RESULT))]
    assert [r["status"] for r in (call, answer, spoken)] == ["completed"] * 3
    assert outcome.audio_frames > 0

    # The spoken turn was heard and answered.
    heard = [e["transcript"] for e in wire.of("conversation.item.input_audio_transcription.completed")]
    assert len(heard) == 1 and "thank" in heard[0].lower()
    spoken_text = [p.get("transcript") for i in spoken["output"] for p in i.get("content") or []]
    assert spoken_text == [script.SHORT_ANSWER]

    # The server's history holds the turns in the order they happened.
    order = script.server_order(wire.from_server)
    assert [i["id"] for i in order] == script.arrival_order(wire.from_server)
    assert [(i["type"], i.get("role")) for i in order] == [
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    # Pipecat's own copy of the conversation (its LLMContext) tells the same story.
    call_id = call["output"][0]["call_id"]
    assert [(m["role"], m.get("content") or m.get("tool_calls")) for m in outcome.messages] == [
        ("user", script.WEATHER_QUESTION),
        (
            "assistant",
            [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": script.TOOL_NAME, "arguments": script.TOOL_ARGUMENTS},
                }
            ],
        ),
        ("tool", json.dumps(script.TOOL_RESULT)),
        ("assistant", heard_answer[0]),
        ("user", heard[0]),
        ("assistant", script.SHORT_ANSWER),
    ]
    script.figures(
        "pipecat",
        turns=2,
        server_events=len(wire.from_server),
        **script.latencies(wire.from_server),
    )
