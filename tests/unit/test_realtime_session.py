"""The Realtime session event by event, over a real WebSocket (uvicorn on loopback) in front of
a conversation with fake engines. Every GA event received is validated against the official
SDK's ``RealtimeServerEvent`` (the beta ones against its beta counterpart)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, get_args

import pytest
import websockets
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from hark.engines.base import ChatMessage, LLMOptions, ToolCall
from hark.pipeline.conversation import LLMStatus
from hark.pipeline.tools import CURRENT_TIME, Toolbox
from hark.transports.realtime import RealtimeSession
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, fake_conversation
from tests.servers import ThreadedServer


def by_type(union: Any) -> dict[str, type[BaseModel]]:
    """The SDK's server event models, by their ``type`` value."""
    models = get_args(get_args(union)[0])
    return {get_args(m.model_fields["type"].annotation)[0]: m for m in models}


GA = by_type(RealtimeServerEvent)
BETA = by_type(BetaServerEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@dataclass
class Backend:
    llm: FakeLLM = field(default_factory=lambda: FakeLLM(chunks=("Hello there.",)))
    tts: FakeTTS = field(default_factory=lambda: FakeTTS(ms_per_char=2))
    stt: FakeSTT = field(default_factory=lambda: FakeSTT(text="what is the weather"))
    tools: Toolbox | None = None

    def app(self) -> Starlette:
        async def endpoint(websocket: WebSocket) -> None:
            await websocket.accept()

            def factory(emit: Any) -> Any:
                return fake_conversation(
                    stt=self.stt, tts=self.tts, llm=self.llm, emit=emit, tools=self.tools
                )

            await RealtimeSession(websocket, factory, LLMStatus("llm", "ready"), "hark").run()

        return Starlette(routes=[WebSocketRoute("/v1/realtime", endpoint)])


@dataclass
class Wire:
    ws: Any
    beta: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    seen: int = 0

    async def send(self, **event: Any) -> None:
        await self.ws.send(json.dumps(event))

    async def until(
        self, kind: str, where: Callable[[dict[str, Any]], bool] = lambda e: True, timeout: float = 10
    ) -> dict[str, Any]:
        """The next ``kind`` event after the last one returned (events before it stay recorded)."""
        async with asyncio.timeout(timeout):
            while True:
                while self.seen < len(self.events):
                    event = self.events[self.seen]
                    self.seen += 1
                    if event["type"] == kind and where(event):
                        return event
                message = json.loads(await self.ws.recv())
                if not message["type"].startswith("hark."):
                    self.conforms(message)
                self.events.append(message)

    def conforms(self, message: dict[str, Any]) -> None:
        """Validate against the SDK's own model. The beta models list OpenAI's model names as
        the only values of ``session.model``; hark reports the one asked for (``hark``)."""
        if not self.beta:
            GA[message["type"]].model_validate(message)
            return
        if message["type"].startswith("session."):
            message = {**message, "session": {**message["session"], "model": "gpt-4o-realtime-preview"}}
        BETA[message["type"]].model_validate(message)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


@pytest.fixture
def backend() -> Backend:
    return Backend()


@asynccontextmanager
async def connect(
    backend: Backend, query: str = "", headers: dict[str, str] | None = None
) -> AsyncIterator[Wire]:
    with ThreadedServer(backend.app()) as server:
        url = f"ws://127.0.0.1:{server.port}/v1/realtime?model=hark{query}"
        async with websockets.connect(url, additional_headers=headers or {}) as ws:
            wire = Wire(ws, beta=bool(headers))
            await wire.until("session.created")
            yield wire


def user_text(text: str, item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }
    if item_id is not None:
        item["id"] = item_id
    return item


async def turn(wire: Wire, text: str, item_id: str | None = None, **response: Any) -> dict[str, Any]:
    await wire.send(type="conversation.item.create", item=user_text(text, item_id))
    await wire.send(type="response.create", **({"response": response} if response else {}))
    return await wire.until("response.done", timeout=15)


def system_of(messages: list[ChatMessage]) -> str:
    return messages[0].content if messages and messages[0].role == "system" else ""


# -- hark's own events only on request --------------------------------------------------------


async def test_strict_by_default_and_hark_events_on_request(backend: Backend) -> None:
    async with connect(backend) as wire:
        await turn(wire, "Hi")
        assert not [t for t in wire.types() if t.startswith("hark.")]
    async with connect(backend, "&hark_events=1") as wire:
        await turn(wire, "Hi")
        kinds = wire.types()
        assert "hark.llm_status" in kinds and "hark.state" in kinds and "hark.latency" in kinds


async def test_a_bad_hark_events_value_is_an_error_and_the_session_goes_on(backend: Backend) -> None:
    async with connect(backend, "&hark_events=maybe") as wire:
        error = await wire.until("error")
        assert error["error"]["param"] == "hark_events"
        done = await turn(wire, "Hi")
        assert done["response"]["status"] == "completed"


# -- responses: metadata, per-response settings, text output ------------------------------------


async def test_metadata_is_echoed_in_created_and_done(backend: Backend) -> None:
    async with connect(backend) as wire:
        done = await turn(wire, "Hi", metadata={"client_event_id": "abc"})
        created = wire.of("response.created")[-1]
        assert created["response"]["metadata"] == {"client_event_id": "abc"}
        assert done["response"]["metadata"] == {"client_event_id": "abc"}
        assert done["response"]["conversation_id"] is not None


async def test_per_response_settings_apply_to_that_response_only(backend: Backend) -> None:
    async with connect(backend) as wire:
        await turn(
            wire,
            "Hi",
            instructions="Answer in French.",
            tools=[WEATHER],
            tool_choice="required",
            max_output_tokens=32,
        )
        await turn(wire, "Again")
    first, second = backend.llm.calls
    assert system_of(first) == "Answer in French." and system_of(second) == "Be brief."
    options: list[LLMOptions] = [o for o in backend.llm.options if o is not None]
    assert [t.name for t in options[0].tools] == ["get_weather"]
    assert (options[0].tool_choice, options[0].max_tokens) == ("required", 32)
    assert (options[1].tools, options[1].tool_choice, options[1].max_tokens) == ((), "auto", None)


async def test_text_output_spends_no_speech_and_switches_back(backend: Backend) -> None:
    async with connect(backend) as wire:
        await wire.send(type="session.update", session={"type": "realtime", "output_modalities": ["text"]})
        updated = await wire.until("session.updated")
        assert updated["session"]["output_modalities"] == ["text"]
        done = await turn(wire, "Hi")
        assert done["response"]["output_modalities"] == ["text"]
        assert done["response"]["output"][0]["content"] == [{"type": "output_text", "text": "Hello there."}]
        assert wire.of("response.output_text.done")[-1]["text"] == "Hello there."
        assert not wire.of("response.output_audio.delta") and backend.tts.texts == []
        # One spoken response on request, then the session's text again; then audio for good.
        await turn(wire, "Say it", output_modalities=["audio"])
        assert wire.of("response.output_audio.delta") and backend.tts.texts == ["Hello there."]
        done = await turn(wire, "Write it")
        assert done["response"]["output_modalities"] == ["text"] and backend.tts.texts == ["Hello there."]
        await wire.send(type="session.update", session={"type": "realtime", "output_modalities": ["audio"]})
        done = await turn(wire, "Say it again")
        assert done["response"]["output"][0]["content"][0]["type"] == "output_audio"
        assert len(backend.tts.texts) == 2
        # The history kept every exchange, whatever its modality.
        assert [m.content for m in backend.llm.calls[-1] if m.role == "user"] == [
            "Hi",
            "Say it",
            "Write it",
            "Say it again",
        ]


async def test_a_bad_modality_is_an_error_naming_the_event(backend: Backend) -> None:
    async with connect(backend) as wire:
        await turn(wire, "Hi")
        await wire.send(type="session.update", event_id="ev_mod", session={"output_modalities": ["video"]})
        error = (await wire.until("error"))["error"]
        assert (error["event_id"], error["param"]) == ("ev_mod", "session.output_modalities.0")
        await wire.send(type="session.update", event_id="ev_none", session={"output_modalities": []})
        error = (await wire.until("error"))["error"]
        assert error["event_id"] == "ev_none"
        done = await turn(wire, "Still there?")
        assert done["response"]["output_modalities"] == ["audio"]
        assert len([m for m in backend.llm.calls[-1] if m.role == "user"]) == 2


# -- items: order, retrieve, delete, duplicates ------------------------------------------------


async def test_previous_item_id_is_the_item_before_it(backend: Backend) -> None:
    async with connect(backend) as wire:
        await turn(wire, "One", "u1")
        await turn(wire, "Two", "u2")
        added = [(e["item"]["id"], e["previous_item_id"]) for e in wire.of("conversation.item.added")]
        ids = [item_id for item_id, _ in added]
        assert ids[0] == "u1" and ids[2] == "u2" and len(ids) == 4
        assert [previous for _, previous in added] == [None, *ids[:-1]]
        done = {e["item"]["id"]: e["previous_item_id"] for e in wire.of("conversation.item.done")}
        assert done == dict(added), "conversation.item.done repeats the same previous_item_id"


async def test_retrieve_and_delete(backend: Backend) -> None:
    async with connect(backend) as wire:
        await turn(wire, "Remember the number seven", "u1")
        assistant = wire.of("response.done")[-1]["response"]["output"][0]["id"]
        await wire.send(type="conversation.item.retrieve", item_id="u1", event_id="r1")
        retrieved = await wire.until("conversation.item.retrieved")
        assert retrieved["item"]["content"] == [{"type": "input_text", "text": "Remember the number seven"}]
        await wire.send(type="conversation.item.delete", item_id="u1", event_id="d1")
        assert (await wire.until("conversation.item.deleted"))["item_id"] == "u1"
        await wire.send(type="conversation.item.retrieve", item_id="u1", event_id="r2")
        error = (await wire.until("error"))["error"]
        assert (error["code"], error["event_id"]) == ("item_not_found", "r2")
        await wire.send(type="conversation.item.delete", item_id="nope", event_id="d2")
        error = (await wire.until("error"))["error"]
        assert (error["code"], error["event_id"]) == ("item_not_found", "d2")
        # Re-creating a deleted id is fine (LiveKit's history sync does it).
        done = await turn(wire, "What number?", "u1")
        assert done["response"]["status"] == "completed"
    last = backend.llm.calls[-1]
    assert [m.content for m in last if m.role == "user"] == ["What number?"]
    assert [m.role for m in last] == ["system", "assistant", "user"]
    assert assistant != "u1"


async def test_retrieve_during_a_response(backend: Backend) -> None:
    backend.llm.chunk_delay = 0.3
    backend.llm.chunks = ("One.", " Two.", " Three.")
    async with connect(backend) as wire:
        await wire.send(type="conversation.item.create", item=user_text("Count", "u1"))
        await wire.send(type="response.create")
        added = await wire.until("response.output_item.added")
        await wire.send(type="conversation.item.retrieve", item_id=added["item"]["id"], event_id="r_live")
        await wire.send(type="conversation.item.retrieve", item_id="u1", event_id="r_user")
        await wire.send(type="conversation.item.retrieve", item_id="ghost", event_id="r_ghost")
        live = await wire.until("conversation.item.retrieved")
        assert (live["item"]["role"], live["item"]["status"]) == ("assistant", "in_progress")
        user = await wire.until("conversation.item.retrieved")
        assert user["item"]["id"] == "u1"
        error = (await wire.until("error"))["error"]
        assert (error["code"], error["event_id"]) == ("item_not_found", "r_ghost")
        done = await wire.until("response.done", timeout=15)
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["transcript"] == "One. Two. Three."


async def test_a_reused_item_id_is_refused_and_counted_once(backend: Backend) -> None:
    async with connect(backend) as wire:
        await wire.send(type="conversation.item.create", item=user_text("Hello", "dup"))
        await wire.until("conversation.item.added")
        await wire.send(type="conversation.item.create", item=user_text("Hello", "dup"), event_id="c2")
        error = (await wire.until("error"))["error"]
        assert (error["code"], error["event_id"]) == ("item_create_duplicate_item_id", "c2")
        await wire.send(type="response.create")
        await wire.until("response.done")
    assert [m.content for m in backend.llm.calls[-1] if m.role == "user"] == ["Hello"]


async def test_unknown_events_name_their_event_id(backend: Backend) -> None:
    async with connect(backend) as wire:
        await wire.send(type="transcription_session.update", event_id="x1", session={})
        error = (await wire.until("error"))["error"]
        assert (error["code"], error["event_id"]) == ("unknown_event_type", "x1")
        assert (await turn(wire, "Hi"))["response"]["status"] == "completed"


# -- out-of-band responses ---------------------------------------------------------------------


async def test_out_of_band_response_leaves_the_conversation_alone(backend: Backend) -> None:
    backend.llm.scripts = [("Hello there.",), ("A summary.",), ("Hello again.",)]
    async with connect(backend) as wire:
        await turn(wire, "Hi", "u1")
        added_before = len(wire.of("conversation.item.added"))
        done = await turn_oob(wire)
        assert done["response"]["conversation_id"] is None
        assert done["response"]["output"][0]["content"][0]["text"] == "A summary."
        assert len(wire.of("conversation.item.added")) == added_before
        await turn(wire, "And now?", "u2")
    oob, after = backend.llm.calls[1], backend.llm.calls[2]
    assert [(m.role, m.content) for m in oob] == [
        ("system", "Summarise."),
        ("user", "Hi"),
        ("user", "Be short."),
    ]
    assert "A summary." not in [m.content for m in after]
    assert [m.content for m in after if m.role == "user"] == ["Hi", "And now?"]


async def turn_oob(wire: Wire) -> dict[str, Any]:
    await wire.send(
        type="response.create",
        response={
            "conversation": "none",
            "output_modalities": ["text"],
            "instructions": "Summarise.",
            "metadata": {"purpose": "summary"},
            "input": [{"type": "item_reference", "id": "u1"}, user_text("Be short.")],
        },
    )
    return await wire.until("response.done", lambda e: e["response"]["metadata"] == {"purpose": "summary"})


# -- client function tools ---------------------------------------------------------------------


async def test_client_tool_round_trip(backend: Backend) -> None:
    call = ToolCall("call_w1", "get_weather", '{"city": "Paris"}')
    backend.llm.scripts = [(call,), ("It is sunny in Paris.",)]
    async with connect(backend) as wire:
        await wire.send(
            type="session.update", session={"type": "realtime", "tools": [WEATHER], "tool_choice": "auto"}
        )
        updated = await wire.until("session.updated")
        assert [t["name"] for t in updated["session"]["tools"]] == ["get_weather"]
        done = await turn(wire, "Weather in Paris?", "u1")
        assert done["response"]["status"] == "completed"
        [item] = done["response"]["output"]
        assert (item["type"], item["call_id"], item["name"], item["arguments"]) == (
            "function_call",
            "call_w1",
            "get_weather",
            '{"city": "Paris"}',
        )
        kinds = [k for k in wire.types() if k.startswith(("response.", "conversation.item"))]
        start = kinds.index("response.created")
        assert kinds[start:] == [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        added = wire.of("conversation.item.added")[-1]
        assert added["previous_item_id"] == "u1"
        await asyncio.sleep(0.3)
        assert len(backend.llm.calls) == 1, "hark does not go on by itself"
        output = {"type": "function_call_output", "call_id": "call_w1", "output": '{"sky": "sunny"}'}
        await wire.send(type="conversation.item.create", item=output)
        created = await wire.until(
            "conversation.item.added", lambda e: e["item"]["type"] == "function_call_output"
        )
        assert created["previous_item_id"] == item["id"]
        await wire.send(type="response.create")
        done = await wire.until("response.done")
        assert done["response"]["output"][0]["content"][0]["transcript"] == "It is sunny in Paris."
        assert wire.of("response.output_audio.delta")
    _first, second = backend.llm.calls
    assert [t.name for t in backend.llm.options[0].tools] == ["get_weather"]  # type: ignore[union-attr]
    assistant, tool = second[-2:]
    assert assistant.tool_calls == (call,)
    assert (tool.role, tool.content, tool.tool_call_id) == ("tool", '{"sky": "sunny"}', "call_w1")


async def test_tool_output_for_an_unknown_call_is_refused(backend: Backend) -> None:
    async with connect(backend) as wire:
        await turn(wire, "Hi", "u1")
        output = {"type": "function_call_output", "call_id": "call_nope", "output": "{}"}
        await wire.send(type="conversation.item.create", item=output, event_id="o1")
        error = (await wire.until("error"))["error"]
        assert (error["code"], error["event_id"]) == ("function_call_not_found", "o1")
        done = await turn(wire, "Still here?", "u2")
        assert done["response"]["status"] == "completed"
    assert [m.content for m in backend.llm.calls[-1] if m.role == "user"] == ["Hi", "Still here?"]


async def test_builtin_tools_run_beside_client_tools(backend: Backend) -> None:
    backend.tools = Toolbox([CURRENT_TIME])
    backend.llm.scripts = [
        (ToolCall("call_t", "current_time", '{"timezone": "UTC"}'),),
        (ToolCall("call_w", "get_weather", '{"city": "Oslo"}'),),
    ]
    async with connect(backend) as wire:
        await wire.send(type="session.update", session={"type": "realtime", "tools": [WEATHER]})
        await wire.until("session.updated")
        done = await turn(wire, "Time and weather?")
        assert [i["name"] for i in done["response"]["output"]] == ["get_weather"]
    _first, second = backend.llm.calls
    assert sorted(t.name for t in backend.llm.options[0].tools) == ["current_time", "get_weather"]  # type: ignore[union-attr]
    assert second[-1].role == "tool" and second[-1].tool_call_id == "call_t"


# -- the beta dialect --------------------------------------------------------------------------


async def test_beta_dialect(backend: Backend) -> None:
    async with connect(backend, headers={"OpenAI-Beta": "realtime=v1"}) as wire:
        created = wire.of("session.created")[0]["session"]
        assert created["modalities"] == ["audio", "text"] and created["input_audio_format"] == "pcm16"
        await wire.send(
            type="session.update",
            session={
                "modalities": ["text", "audio"],
                "turn_detection": None,
                "input_audio_format": "pcm16",
                "voice": "alloy",
            },
        )
        updated = (await wire.until("session.updated"))["session"]
        assert updated["turn_detection"] is None
        await wire.send(type="conversation.item.create", item=user_text("Hi", "u1"))
        await wire.send(type="response.create", response={"modalities": ["text"]})
        done = await wire.until("response.done")
        assert done["response"]["output"][0]["content"][0]["type"] == "text"
        await wire.send(type="response.create")
        done = await wire.until("response.done", lambda e: e["response"]["modalities"] == ["audio", "text"])
        kinds = set(wire.types())
        assert {"response.text.delta", "response.audio.delta", "response.audio_transcript.delta"} <= kinds
        assert "conversation.item.created" in kinds
        assert not {
            k for k in kinds if "output_audio" in k or "output_text" in k or k == "conversation.item.added"
        }
        assert done["response"]["output"][0]["content"][0]["type"] == "audio"
