"""The OpenAI Agents SDK for Python (openai-agents, pinned in pyproject's `conformance` extra): a
RealtimeAgent with a client function tool holds a spoken turn, a typed turn and a barge-in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conformance import script
from tests.servers import FakeChatLLM, HarkProcess

pytestmark = pytest.mark.slow

agents = pytest.importorskip("agents", reason="pip install -e '.[conformance]' (make test does)")
from agents import function_tool  # noqa: E402
from agents.realtime import RealtimeAgent, RealtimeRunner, RealtimeSession  # noqa: E402

CHUNK = 24_000 * 2 * 40 // 1000  # 40 ms of PCM16 at 24 kHz


@dataclass
class Seen:
    """Everything the SDK's session yielded, with the raw server events pulled out."""

    events: list[tuple[float, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def raw(self, after: int = 0) -> list[dict[str, Any]]:
        found = []
        for at, event in self.events[after:]:
            data = getattr(event, "data", None) if event.type == "raw_model_event" else None
            if data is not None and data.type == "raw_server_event":
                found.append(script.received(data.data, at))
        return found

    def of(self, kind: str, after: int = 0) -> list[Any]:
        return [e for _, e in self.events[after:] if e.type == kind]

    def mark(self) -> int:
        return len(self.events)

    async def until(self, what: str, check: Callable[[], bool], timeout: float = 40) -> float:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                kinds = [e.get("type") for e in self.raw()]
                raise TimeoutError(f"no {what} within {timeout} s; server events: {kinds}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.5)
        return time.monotonic()

    def responses_done(self, after: int) -> list[dict[str, Any]]:
        return [e["response"] for e in self.raw(after) if e["type"] == "response.done"]


@asynccontextmanager
async def conversation(
    hark: HarkProcess, agent: RealtimeAgent
) -> AsyncIterator[tuple[RealtimeSession, Seen]]:
    runner = RealtimeRunner(agent)
    seen = Seen()
    async with await runner.run(model_config={"url": hark.ws_url, "api_key": "none"}) as session:

        async def pump() -> None:
            async for event in session:
                seen.events.append((time.monotonic(), event))
                seen.changed.set()

        reader = asyncio.create_task(pump())
        try:
            await seen.until(
                "session.updated", lambda: any(e["type"] == "session.updated" for e in seen.raw())
            )
            yield session, seen
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def say(session: RealtimeSession, pcm: bytes) -> float:
    """Send ``pcm`` paced like a microphone; returns when its last chunk went."""
    started = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), CHUNK)):
        await session.send_audio(pcm[offset : offset + CHUNK])
        await asyncio.sleep(max(0.0, started + (index + 1) * 0.04 - time.monotonic()))
    return time.monotonic()


def transcripts(response: dict[str, Any]) -> list[str]:
    return [
        part.get("transcript") or part.get("text") or ""
        for item in response["output"]
        for part in item.get("content") or []
    ]


async def test_spoken_and_typed_turns_a_tool_and_a_barge_in(hark: HarkProcess, llm: FakeChatLLM) -> None:
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return script.TOOL_RESULT

    agent = RealtimeAgent(name="Assistant", instructions="Keep answers short.", tools=[get_weather])
    async with conversation(hark, agent) as (session, seen):
        # Turn 1, spoken: the model calls the tool; the SDK runs it and the answer is spoken.
        turn1 = seen.mark()
        await say(session, script.spoken(script.WEATHER_QUESTION))
        await seen.until("the tool's answer", lambda: len(seen.responses_done(turn1)) >= 2)
        audio1 = [t for t, e in seen.events[turn1:] if e.type == "audio"]
        call_response, answer = seen.responses_done(turn1)[:2]
        assert [item["type"] for item in call_response["output"]] == ["function_call"]
        call = call_response["output"][0]
        assert call["name"] == script.TOOL_NAME and json.loads(call["arguments"]) == {"city": "Paris"}
        assert transcripts(answer) == [script.TOOL_REPLY.format(result=script.TOOL_RESULT)]
        assert answer["status"] == "completed" and audio1

        # Turn 2, typed: a long answer starts; the user speaks over it (barge-in).
        turn2 = seen.mark()
        await session.send_message(script.STORY_REQUEST)
        await seen.until("the story's audio", lambda: len(seen.of("audio", turn2)) >= 5)
        await asyncio.sleep(0.5)
        barge = time.monotonic()
        interrupt_task = asyncio.create_task(say(session, script.spoken(script.BARGE_IN)))
        await seen.until("audio_interrupted", lambda: bool(seen.of("audio_interrupted", turn2)))
        interrupted_after = time.monotonic() - barge
        await interrupt_task
        await seen.until("the barge-in's answer", lambda: len(seen.responses_done(turn2)) >= 2)
        story, reply = seen.responses_done(turn2)[:2]
        assert story["status"] == "cancelled"
        assert script.STORY.startswith(transcripts(story)[0].strip()[:40])
        assert transcripts(reply) == [script.SHORT_ANSWER] and reply["status"] == "completed"
        await asyncio.sleep(1.0)  # the SDK's retrieve after truncation and transcription comes back
        raw = seen.raw()
        history = seen.of("history_updated")[-1].history

    # Zero errors of any kind: error events, schema failures, exceptions.
    assert seen.of("error") == []
    raw_model_kinds = [e.data.type for e in seen.of("raw_model_event")]
    assert "error" not in raw_model_kinds and "exception" not in raw_model_kinds
    assert script.error_events(raw) == []

    # The tool ran exactly once with the model's arguments; the LLM was offered it as declared.
    assert calls == ["Paris"]
    assert len(seen.of("tool_start")) == len(seen.of("tool_end")) == 1
    offered = [t["function"] for r in llm.requests for t in r["body"].get("tools") or []]
    assert offered and {t["name"] for t in offered} == {script.TOOL_NAME}
    assert all(t["parameters"]["properties"].keys() == {"city"} for t in offered)

    # The LLM's last request carries the story only as far as it was played (hark drops an
    # assistant message truncated to nothing), never all of it.
    said = [m.get("content") or "" for m in llm.requests[-1]["body"]["messages"] if m["role"] == "assistant"]
    told = [text for text in said if text and script.STORY.startswith(text.rstrip(".,… "))]
    assert len(told) <= 1 and all(len(text) < len(script.STORY) for text in told)

    # The barge-in truncated the story on the server, and both spoken turns were heard. (The SDK
    # retrieves the current item after each transcript and truncation; hark answers.)
    assert any(e["type"] == "conversation.item.truncated" for e in raw)
    assert any(e["type"] == "conversation.item.retrieved" for e in raw)
    heard = [
        e["transcript"].lower() for e in raw if e["type"].endswith("input_audio_transcription.completed")
    ]
    assert len(heard) == 2 and "weather" in heard[0] and "stop" in heard[1]

    # One history, the same order on both sides (the SDK folds a call's output into the call).
    server = [i for i in script.server_order(raw) if i["type"] != "function_call_output"]
    assert [i.item_id for i in history] == [i["id"] for i in server]
    assert [i["id"] for i in server] == [
        i for i in script.arrival_order(raw) if i in {s["id"] for s in server}
    ]
    assert [(i["type"], i.get("role")) for i in server] == [
        ("message", "user"),
        ("function_call", None),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    script.figures(
        "openai-agents",
        turns=3,
        **script.latencies(raw),
        interrupted_after_clip_start_ms=round(interrupted_after * 1000),
        story_chars_kept=f"{len(told[0]) if told else 0}/{len(script.STORY)}",
        server_events=len(raw),
    )
