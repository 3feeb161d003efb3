"""The Realtime protocol as the official ``openai`` SDK speaks it, against a real ``hark serve``
answering through the loopback stand-in LLM: a client tool round trip that ends in speech, a
text-only turn, metadata, retrieve/delete, an out-of-band response, and the beta dialect.
Every conversation here must get through without a single ``error`` or ``hark.*`` event."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI

from tests.realtime_client import Recorder, realtime
from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeChatLLM, HarkProcess]]:
    llm = FakeChatLLM(
        reply="Hello from the model.",
        tool_call=("get_weather", '{"city": "Paris"}'),
        tool_reply="The weather service says {result}.",
    )
    log = tmp_path_factory.mktemp("hark-sdk") / "server.log"
    with ThreadedServer(llm.app()) as server:
        env = {"HARK_LLM_BASE_URL": server.base_url + "/v1", "HARK_LLM_TIMEOUT": "5"}
        with HarkProcess(env=env, log_path=log) as hark:
            yield llm, hark


def user(text: str, item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }
    if item_id is not None:
        item["id"] = item_id
    return item


def clean(rec: Recorder) -> None:
    assert rec.of("error") == [], [e.error for e in rec.of("error")]
    assert not [r.type for r in rec.events if r.type.startswith("hark.")]


async def test_client_tool_round_trip_is_spoken(served: tuple[FakeChatLLM, HarkProcess]) -> None:
    llm, hark = served
    async with realtime(hark.base_url, hark_events=False, tools=[WEATHER], tool_choice="auto") as (conn, rec):
        updated = rec.of("session.updated")[-1]
        assert [t.name for t in updated.session.tools] == ["get_weather"]
        await conn.conversation.item.create(item=user("What is the weather in Paris?", "u_weather"))
        mark = rec.mark()
        await conn.response.create()
        done = await rec.wait_for("response.done", after=mark, timeout=30)
        assert done.response.status == "completed"
        [call] = done.response.output
        assert (call.type, call.name, call.arguments) == ("function_call", "get_weather", '{"city": "Paris"}')
        arguments = await rec.wait_for("response.function_call_arguments.done", after=mark)
        assert (arguments.call_id, arguments.item_id) == (call.call_id, call.id)
        added = await rec.wait_for("conversation.item.added", lambda e: e.item.id == call.id, after=mark)
        assert added.previous_item_id == "u_weather"
        await asyncio.sleep(0.5)
        assert not [e for e in rec.of("response.created") if e.response.id != done.response.id][mark:]
        output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny and 21 degrees"}
        await conn.conversation.item.create(item=output)
        mark = rec.mark()
        audio_before = len(rec.audio)
        await conn.response.create()
        done = await rec.wait_for("response.done", after=mark, timeout=40)
        clean(rec)
    spoken = done.response.output[0].content[0].transcript
    assert spoken == "The weather service says sunny and 21 degrees."
    assert (len(rec.audio) - audio_before) / 2 / 24_000 > 1.0, "the answer was spoken"
    request = llm.requests[-1]["body"]
    assert [t["function"]["name"] for t in request["tools"]] == ["get_weather"]
    assistant, tool = request["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == call.call_id
    assert tool == {"role": "tool", "content": "sunny and 21 degrees", "tool_call_id": call.call_id}


async def test_text_only_turn_with_metadata(served: tuple[FakeChatLLM, HarkProcess]) -> None:
    _, hark = served
    async with realtime(hark.base_url, hark_events=False, output_modalities=["text"]) as (conn, rec):
        await conn.conversation.item.create(item=user("Say hello."))
        await conn.response.create(response={"metadata": {"turn": "t1"}})
        done = await rec.wait_for("response.done", timeout=30)
        created = rec.of("response.created")[0]
        clean(rec)
    assert created.response.metadata == {"turn": "t1"} and done.response.metadata == {"turn": "t1"}
    assert done.response.output[0].content[0].text == "Hello from the model."
    assert "".join(e.delta for e in rec.of("response.output_text.delta")) == "Hello from the model."
    assert not rec.of("response.output_audio.delta") and not rec.audio


async def test_retrieve_and_delete_change_what_the_llm_sees(served: tuple[FakeChatLLM, HarkProcess]) -> None:
    llm, hark = served
    async with realtime(hark.base_url, hark_events=False) as (conn, rec):
        await conn.conversation.item.create(item=user("My secret word is pineapple.", "u_secret"))
        await conn.conversation.item.retrieve(item_id="u_secret")
        retrieved = await rec.wait_for("conversation.item.retrieved")
        assert retrieved.item.content[0].text == "My secret word is pineapple."
        await conn.conversation.item.delete(item_id="u_secret")
        assert (await rec.wait_for("conversation.item.deleted")).item_id == "u_secret"
        await conn.conversation.item.create(item=user("What is my secret word?"))
        await conn.response.create()
        await rec.wait_for("response.done", timeout=30)
        clean(rec)
    messages = llm.requests[-1]["body"]["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["What is my secret word?"]


async def test_out_of_band_response(served: tuple[FakeChatLLM, HarkProcess]) -> None:
    llm, hark = served
    async with realtime(hark.base_url, hark_events=False) as (conn, rec):
        await conn.conversation.item.create(item=user("I like trains.", "u_trains"))
        await rec.wait_for("conversation.item.added")
        added = len(rec.of("conversation.item.added"))
        await conn.response.create(
            response={
                "conversation": "none",
                "output_modalities": ["text"],
                "instructions": "Classify the topic.",
                "metadata": {"kind": "classifier"},
                "input": [{"type": "item_reference", "id": "u_trains"}],
            }
        )
        done = await rec.wait_for("response.done", timeout=30)
        assert done.response.conversation_id is None and done.response.metadata == {"kind": "classifier"}
        assert len(rec.of("conversation.item.added")) == added
        oob = llm.requests[-1]["body"]["messages"]
        await conn.response.create()
        await rec.wait_for("response.done", lambda e: e.response.id != done.response.id, timeout=30)
        clean(rec)
    assert [(m["role"], m["content"]) for m in oob] == [
        ("system", "Classify the topic."),
        ("user", "I like trains."),
    ]
    after = llm.requests[-1]["body"]["messages"]
    assert [m["role"] for m in after] == ["system", "user"], "the out-of-band answer is not in the history"


async def test_beta_dialect_with_manual_turns(served: tuple[FakeChatLLM, HarkProcess]) -> None:
    _, hark = served
    # The beta client builds its URL from websocket_base_url (it would turn http into wss).
    ws_base = hark.base_url.replace("http://", "ws://") + "/v1"
    client = AsyncOpenAI(
        base_url=hark.base_url + "/v1", websocket_base_url=ws_base, api_key="none", max_retries=0
    )
    kinds: list[str] = []
    audio = bytearray()
    async with client.beta.realtime.connect(model="hark") as conn:
        await conn.session.update(
            session={"turn_detection": None, "modalities": ["text", "audio"], "input_audio_format": "pcm16"}
        )
        await conn.conversation.item.create(item=user("Hello?"))
        await conn.response.create()
        async with asyncio.timeout(30):
            async for event in conn:
                kinds.append(event.type)
                if event.type == "session.updated":
                    assert event.session.turn_detection is None
                if event.type == "response.audio.delta":
                    audio += base64.b64decode(event.delta)
                if event.type == "response.done":
                    done = event
                    break
    await client.close()
    assert "error" not in kinds and not [k for k in kinds if k.startswith("hark.")]
    assert {"conversation.item.created", "response.audio_transcript.delta", "response.audio.done"} <= set(
        kinds
    )
    assert not [k for k in kinds if "output_audio" in k or k == "conversation.item.added"]
    assert done.response.output[0].content[0].transcript == "Hello from the model."
    assert len(audio) / 2 / 24_000 > 0.5


async def test_the_transcription_language_is_set_and_echoed(served: tuple[FakeChatLLM, HarkProcess]) -> None:
    _, hark = served
    french = {"input": {"transcription": {"model": "whisper-1", "language": "fr"}}}
    async with realtime(hark.base_url, hark_events=False, audio=french) as (conn, rec):
        created = rec.of("session.created")[0].session.audio.input.transcription
        assert created.language == "en", "the server's stt.language until the session sets one"
        updated = rec.of("session.updated")[-1].session.audio.input.transcription
        assert (updated.model, updated.language) == ("whisper-1", "fr")
        clean(rec)
        mark = rec.mark()
        bad = {"input": {"transcription": {"language": "francais"}}}
        await conn.session.update(session={"type": "realtime", "audio": bad})
        error = await rec.wait_for("error", after=mark)
        assert (error.error.code, error.error.param) == (
            "invalid_value",
            "session.audio.input.transcription.language",
        )
        detect = {"input": {"transcription": {"model": "whisper-1", "language": None}}}
        await conn.session.update(session={"type": "realtime", "audio": detect})
        updated = await rec.wait_for("session.updated", after=mark)
    assert updated.session.audio.input.transcription.language is None
