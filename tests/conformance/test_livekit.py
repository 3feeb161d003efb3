"""LiveKit Agents' OpenAI realtime plugin (livekit-plugins-openai, pinned in pyproject's
`conformance` extra), driven without a LiveKit server: its RealtimeSession is used the way
AgentSession uses it — the agent keeps its own ChatContext, syncs it with update_chat_ctx()
(creates, and deletes when the agent edits its history) and asks for replies with
generate_reply(); function calls are run by the agent and answered through the chat context;
a last turn is spoken, ended by hark's VAD."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.conformance import script
from tests.servers import FakeChatLLM, HarkProcess

pytestmark = pytest.mark.slow

pytest.importorskip("livekit.plugins.openai", reason="pip install -e '.[conformance]' (make test does)")
import aiohttp  # noqa: E402
from livekit import rtc  # noqa: E402
from livekit.agents import llm as lk  # noqa: E402
from livekit.plugins.openai.realtime import RealtimeModel, RealtimeSession  # noqa: E402

ONE_REPLY_ONLY = "Answer in one short sentence."


async def reply(
    session: RealtimeSession, **options: Any
) -> tuple[list[lk.FunctionCall], list[tuple[str, str, int]], float]:
    """generate_reply(), then the whole generation (see ``collect``), and how long
    generate_reply() took to return."""
    asked = time.monotonic()
    generation = await asyncio.wait_for(session.generate_reply(**options), 15)
    returned_after = time.monotonic() - asked
    made, said = await collect(generation)
    return made, said, returned_after


async def collect(
    generation: lk.GenerationCreatedEvent,
) -> tuple[list[lk.FunctionCall], list[tuple[str, str, int]]]:
    """A generation's function calls, and each message's (id, text, audio bytes)."""

    async def calls() -> list[lk.FunctionCall]:
        return [call async for call in generation.function_stream]

    async def messages() -> list[tuple[str, str, int]]:
        found = []
        async for message in generation.message_stream:

            async def audio(stream: Any = message.audio_stream) -> int:
                return sum([len(frame.data) * 2 async for frame in stream])

            text, audio_bytes = await asyncio.gather(_joined(message.text_stream), audio())
            found.append((message.message_id, text, audio_bytes))
        return found

    made, said = await asyncio.wait_for(asyncio.gather(calls(), messages()), 40)
    return made, said


async def say(session: RealtimeSession, pcm: bytes) -> None:
    """Push ``pcm`` in 20 ms frames, paced like a microphone."""
    chunk = 24_000 * 2 * 20 // 1000
    started = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), chunk)):
        data = pcm[offset : offset + chunk]
        session.push_audio(rtc.AudioFrame(data, 24_000, 1, len(data) // 2))
        await asyncio.sleep(max(0.0, started + (index + 1) * 0.02 - time.monotonic()))


async def _joined(stream: Any) -> str:
    return "".join([str(piece) async for piece in stream])


async def test_generate_reply_chat_ctx_sync_a_tool_and_a_spoken_turn(
    hark: HarkProcess, llm: FakeChatLLM
) -> None:
    calls: list[str] = []

    @lk.function_tool(name=script.TOOL_NAME, description=script.TOOL_DESCRIPTION)
    async def get_weather(city: str) -> str:
        calls.append(city)
        return script.TOOL_RESULT

    server_events: list[dict[str, Any]] = []
    errors: list[Any] = []
    async with aiohttp.ClientSession() as http:
        model = RealtimeModel(base_url=hark.base_url + "/v1", api_key="none", model="hark", http_session=http)
        session = model.session()
        session.on(
            "openai_server_event_received",
            lambda e: server_events.append(script.received(e, time.monotonic())),
        )
        session.on("error", errors.append)
        waits: list[float] = []
        try:
            await session.update_tools([get_weather])
            agent_ctx = lk.ChatContext.empty()  # the agent's own history, as AgentSession keeps it

            # Turn 1: the question goes in through update_chat_ctx(); the reply is a function call.
            agent_ctx.add_message(role="user", content=script.WEATHER_QUESTION)
            await session.update_chat_ctx(agent_ctx)
            made, said, waited = await reply(session)
            waits.append(waited)
            assert said == [] and [(c.name, json.loads(c.arguments)) for c in made] == [
                (script.TOOL_NAME, json.loads(script.TOOL_ARGUMENTS))
            ]
            call = made[0]
            agent_ctx.items.append(call)
            output = await get_weather(**json.loads(call.arguments))
            agent_ctx.items.append(
                lk.FunctionCallOutput(call_id=call.call_id, name=call.name, output=output, is_error=False)
            )
            await session.update_chat_ctx(agent_ctx)
            _, said, waited = await reply(session)
            waits.append(waited)
            [(answer_id, answer, answer_audio)] = said
            assert answer == script.TOOL_REPLY.format(result=script.TOOL_RESULT) and answer_audio > 24_000
            agent_ctx.add_message(role="assistant", content=answer, id=answer_id)

            # Turn 2: a plain exchange, with instructions for this reply only.
            agent_ctx.add_message(role="user", content=script.JOKE_REQUEST)
            await session.update_chat_ctx(agent_ctx)
            joke_request = len(llm.requests)
            _, [(joke_id, joke, _)], waited = await reply(session, instructions=ONE_REPLY_ONLY)
            waits.append(waited)
            assert joke == script.SHORT_ANSWER
            agent_ctx.add_message(role="assistant", content=joke, id=joke_id)

            # The agent edits its history (drops turn 2) and goes on: one sync deletes and creates.
            agent_ctx.items = agent_ctx.items[:-2]
            agent_ctx.add_message(role="user", content=script.THANKS)
            await session.update_chat_ctx(agent_ctx)
            last_request = len(llm.requests)
            _, [(last_id, last, _)], waited = await reply(session)
            waits.append(waited)
            agent_ctx.add_message(role="assistant", content=last, id=last_id)

            # Turn 4, spoken: hark's VAD ends the turn and answers unasked, as AgentSession expects
            # of a model with server turn detection; the agent records both sides.
            generations: asyncio.Queue[lk.GenerationCreatedEvent] = asyncio.Queue()
            transcripts: asyncio.Queue[lk.InputTranscriptionCompleted] = asyncio.Queue()
            session.on("generation_created", generations.put_nowait)
            session.on(
                "input_audio_transcription_completed",
                lambda t: transcripts.put_nowait(t) if t.is_final else None,  # partials come this way too
            )
            await say(session, script.spoken(script.THANKS))
            heard = await asyncio.wait_for(transcripts.get(), 30)
            _, [(spoken_id, spoken_answer, spoken_audio)] = await collect(
                await asyncio.wait_for(generations.get(), 30)
            )
            assert "thank" in heard.transcript.lower() and spoken_audio > 24_000
            assert spoken_answer == script.SHORT_ANSWER
            agent_ctx.add_message(role="user", content=heard.transcript, id=heard.item_id)
            agent_ctx.add_message(role="assistant", content=spoken_answer, id=spoken_id)

            # Every item the agent knows is there on the server, as retrieved one by one.
            for item in agent_ctx.items:
                session.send_event({"type": "conversation.item.retrieve", "item_id": item.id})
            deadline = time.monotonic() + 10
            while len([e for e in server_events if e["type"] == "conversation.item.retrieved"]) < len(
                agent_ctx.items
            ):
                assert time.monotonic() < deadline, "not every item was retrieved"
                assert not [e for e in server_events if e["type"] == "error"]
                await asyncio.sleep(0.05)
            mirror = session.chat_ctx.copy()
        finally:
            await session.aclose()

    # Zero errors, as LiveKit saw them and as they went over the wire.
    assert errors == []
    assert script.error_events(server_events) == []

    # The tool ran once with the model's arguments.
    assert calls == ["Paris"]

    # One history on all three sides: the agent's, LiveKit's mirror of the server, and the server's
    # own account (previous_item_id of each conversation.item.added, and each deletion).
    agent_ids = [item.id for item in agent_ctx.items]
    server = script.server_order(server_events)
    assert [item.id for item in mirror.items] == agent_ids
    assert [item["id"] for item in server] == agent_ids
    assert [e["item"]["id"] for e in server_events if e["type"] == "conversation.item.retrieved"] == agent_ids
    deleted = [e["item_id"] for e in server_events if e["type"] == "conversation.item.deleted"]
    assert len(deleted) == 2 and joke_id in deleted

    # generate_reply(instructions=...) held for that reply only.
    def system(request: int) -> str:
        return " ".join(
            m["content"] for m in llm.requests[request]["body"]["messages"] if m["role"] == "system"
        )

    assert ONE_REPLY_ONLY in system(joke_request) and ONE_REPLY_ONLY not in system(last_request)

    # The LLM was sent that same history: the deleted exchange gone, nothing twice.
    sent = llm.requests[last_request]["body"]["messages"]
    said_to_llm = [(m["role"], m.get("content")) for m in sent if m["role"] != "system"]
    assert said_to_llm[0] == ("user", script.WEATHER_QUESTION)
    assert [role for role, _ in said_to_llm] == ["user", "assistant", "tool", "assistant", "user"]
    assert said_to_llm[-1] == ("user", script.THANKS)
    assert all(content != script.JOKE_REQUEST for _, content in said_to_llm)
    script.figures(
        "livekit",
        responses=5,
        generate_reply_returned_ms=[round(w * 1000) for w in waits],
        **script.latencies(server_events),
        server_events=len(server_events),
    )
