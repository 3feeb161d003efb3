"""One phone call over a real loopback socket, in front of a conversation with fake engines:
the greeting modes, keypad modes and the malformed-message bound (tests/integration/test_twilio.py
runs the real models)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from hark.config import SecuritySettings, TwilioSettings
from hark.pipeline.conversation import LLMStatus
from hark.security import TokenIssuer, scope_for
from hark.transports.twilio import mulaw
from hark.transports.twilio.session import PhoneSession
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, fake_conversation, quiet, tone
from tests.servers import ThreadedServer
from tests.twilio_client import PhoneCall, new_call_sid, phone_call

SECRET = "a-test-signing-secret-of-32-bytes-or-more"


@dataclass
class Backend:
    settings: TwilioSettings
    llm: FakeLLM = field(default_factory=lambda: FakeLLM(chunks=("Hello there.",)))
    tts: FakeTTS = field(default_factory=lambda: FakeTTS(ms_per_char=5))
    stt: FakeSTT = field(default_factory=lambda: FakeSTT(text="what is the weather"))
    tokens: TokenIssuer = field(default_factory=lambda: TokenIssuer(SECRET))
    sessions: list[PhoneSession] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None

    def app(self) -> Starlette:
        async def endpoint(websocket: WebSocket) -> None:
            await websocket.accept()

            def factory(emit: Any) -> Any:
                return fake_conversation(stt=self.stt, tts=self.tts, llm=self.llm, emit=emit, rate=mulaw.RATE)

            session = PhoneSession(
                websocket,
                factory,
                tokens=self.tokens,
                settings=self.settings,
                limits=SecuritySettings(),
                llm_status=LLMStatus("llm", "ready"),
            )
            self.sessions.append(session)
            self.loop = asyncio.get_running_loop()
            await session.run()

        return Starlette(routes=[WebSocketRoute("/twilio/stream", endpoint)])


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadedServer] = []

    @asynccontextmanager
    async def call(backend: Backend, token: str | None = None) -> AsyncIterator[PhoneCall]:
        server = ThreadedServer(backend.app()).__enter__()
        servers.append(server)
        call_sid = new_call_sid()
        token = token or backend.tokens.mint(scope_for("twilio", call_sid)).value
        url = f"ws://127.0.0.1:{server.port}/twilio/stream"
        async with phone_call(url, call_sid, {"token": token}) as (phone, _):
            yield phone

    yield call
    for server in servers:
        server.__exit__(None, None, None)


async def test_the_llm_can_write_the_greeting(serve: Any) -> None:
    backend = Backend(TwilioSettings(greeting_mode="llm", greeting_prompt="Greet the caller."))
    async with serve(backend) as call:
        await call.wait_for("media", timeout=10)
    messages = backend.llm.calls[0]
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[-1].content == "Greet the caller."


async def test_without_a_greeting_the_line_waits_and_ignored_keys_do_nothing(serve: Any) -> None:
    backend = Backend(TwilioSettings(greeting_mode="none", dtmf="ignore"))
    async with serve(backend) as call:
        for digit in "12#":
            await call.dtmf(digit)
        await asyncio.sleep(1.0)
        assert call.of("media") == [] and backend.llm.calls == []
        assert backend.sessions[0].dtmf.received == 3
        # Speech is still heard and answered.
        said, _ = await call.say(tone(600, rate=mulaw.RATE) + quiet(400, rate=mulaw.RATE))
        await call.wait_for("media", after=said, timeout=10)
    assert backend.llm.calls[0][-1].content == "what is the weather"


async def test_a_flood_of_malformed_messages_closes_the_call(serve: Any) -> None:
    backend = Backend(TwilioSettings())
    async with serve(backend) as call:
        await call.wait_for("media", timeout=10)
        for index in range(102):
            await call.ws.send("not json" if index % 2 else json.dumps({"event": "nope"}))
        for _ in range(100):
            if call.close_code is not None:
                break
            await asyncio.sleep(0.05)
    assert (call.close_code, call.close_reason) == (1008, "too many malformed messages")
    assert backend.sessions[0].bad_messages > 100


async def test_an_expired_token_is_refused_before_any_conversation() -> None:
    backend = Backend(TwilioSettings())
    call_sid = new_call_sid()
    stale = TokenIssuer(SECRET, clock=lambda: time.time() - 120).mint(scope_for("twilio", call_sid), ttl=30)
    server = ThreadedServer(backend.app()).__enter__()
    try:
        url = f"ws://127.0.0.1:{server.port}/twilio/stream"
        async with phone_call(url, call_sid, {"token": stale.value}) as (call, _):
            for _ in range(100):
                if call.close_code is not None:
                    break
                await asyncio.sleep(0.05)
    finally:
        server.__exit__(None, None, None)
    assert (call.close_code, call.close_reason) == (4001, "token_expired")
    assert call.of("media") == []
    assert backend.sessions[0].conversation is None and backend.llm.calls == []


async def test_drain_lets_the_reply_finish_then_closes_1001(serve: Any) -> None:
    backend = Backend(TwilioSettings(greeting="One two three four five six seven eight nine ten."))
    backend.tts = FakeTTS(ms_per_char=20)  # about a second of greeting
    async with serve(backend) as call:
        await call.wait_for("media", timeout=10)
        assert backend.loop is not None
        session = backend.sessions[0]
        drained = asyncio.run_coroutine_threadsafe(session.drain(time.monotonic() + 10), backend.loop)
        await asyncio.wrap_future(drained)
        await asyncio.sleep(0.2)
        assert call.close_code == 1001
    sent = sum(len(base64.b64decode(m.message["media"]["payload"])) for m in call.of("media"))
    # The whole greeting went out before the close: 50 characters at 20 ms each.
    assert sent / mulaw.RATE >= 0.95
