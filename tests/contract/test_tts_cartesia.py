"""CartesiaTTS against a loopback server speaking Cartesia's TTS WebSocket protocol."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from hark.config import ProviderConfig, Settings
from hark.engines.base import TTS
from hark.engines.tts.cartesia import CartesiaTTS
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.contract.servers.cartesia_server import VOICE, FakeCartesia, WebSocketServer
from tests.contract.servers.elevenlabs_server import collect
from tests.servers import free_port

TEXT = "Hello there, this is a streaming test."
Make = Callable[..., CartesiaTTS]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeCartesia, WebSocketServer]]:
    fake = FakeCartesia()
    with WebSocketServer(fake) as srv:
        yield fake, srv


@pytest.fixture
def fake(server: tuple[FakeCartesia, WebSocketServer]) -> FakeCartesia:
    server[0].reset()
    return server[0]


@pytest.fixture
async def make(server: tuple[FakeCartesia, WebSocketServer]) -> AsyncIterator[Make]:
    engines: list[CartesiaTTS] = []

    def build(base_url: str | None = None, **fields: Any) -> CartesiaTTS:
        config: dict[str, Any] = {"voice": VOICE, "api_key": "test-key", "timeout": 2.0, "total_timeout": 5.0}
        config.update(fields)
        provider = ProviderConfig(kind="cartesia", base_url=base_url or server[1].base_url, **config)
        engines.append(CartesiaTTS.from_config(provider, Settings()))
        return engines[-1]

    yield build
    for engine in engines:
        await engine.aclose()


async def test_streams_whole_samples_in_several_chunks(fake: FakeCartesia, make: Make) -> None:
    tts = make()
    assert isinstance(tts, TTS) and tts.capabilities.streaming and tts.sample_rate == 24000
    chunks = await collect(tts.synthesize(TEXT))
    assert len(chunks) >= 3
    assert all(len(c) % 2 == 0 and c for c in chunks)
    assert sum(map(len, chunks)) == fake.last.sent == len(TEXT) * 24000 * 10 // 1000 * 2
    assert fake.last.done


async def test_request_shape_and_auth(fake: FakeCartesia, make: Make) -> None:
    await collect(make(language="en").synthesize(TEXT))
    [handshake] = fake.handshakes
    assert handshake["path"] == "/tts/websocket"
    assert handshake["auth"] == "Bearer test-key"
    assert handshake["query"]["cartesia_version"] == ["2025-04-16"]
    [request] = fake.requests
    context = request.pop("context_id")
    assert isinstance(context, str) and context
    assert request == {
        "model_id": "sonic-2",
        "transcript": TEXT,
        "voice": {"mode": "id", "id": VOICE},
        "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 24000},
        "continue": False,
        "language": "en",
    }


async def test_sample_rate_model_and_version_options(fake: FakeCartesia, make: Make) -> None:
    options = {"sample_rate": 16000, "cartesia_version": "2026-03-01"}
    tts = make(model="sonic-turbo", options=options)
    assert tts.sample_rate == 16000
    chunks = await collect(tts.synthesize("Hi."))
    assert sum(map(len, chunks)) == 3 * 16000 * 10 // 1000 * 2
    assert fake.requests[0]["model_id"] == "sonic-turbo"
    assert fake.requests[0]["output_format"]["sample_rate"] == 16000
    assert fake.handshakes[0]["query"]["cartesia_version"] == ["2026-03-01"]


async def test_first_chunk_arrives_before_the_server_finishes(fake: FakeCartesia, make: Make) -> None:
    fake.gate = threading.Event()  # The server holds after its first piece until released.
    stream = make().synthesize(TEXT)
    first = await anext(stream)
    assert first and not fake.last.done
    fake.gate.set()
    rest = await collect(stream)
    assert fake.last.done and len(first) + sum(map(len, rest)) == fake.last.sent


async def test_api_key_from_the_environment(
    fake: FakeCartesia, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARTESIA_API_KEY", "test-key")
    await collect(make(api_key=None).synthesize("Hi."))
    assert fake.handshakes[0]["auth"] == "Bearer test-key"


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARTESIA_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="CARTESIA_API_KEY"):
        CartesiaTTS.from_config(ProviderConfig(kind="cartesia", voice=VOICE), Settings())


def test_voice_is_required() -> None:
    with pytest.raises(ConfigError, match="voice"):
        CartesiaTTS.from_config(ProviderConfig(kind="cartesia", api_key="k"), Settings())


async def test_blank_text_sends_nothing(fake: FakeCartesia, make: Make) -> None:
    assert await collect(make().synthesize("")) == []
    assert fake.handshakes == []


async def test_wrong_key_is_rejected_at_the_handshake(fake: FakeCartesia, make: Make) -> None:
    with pytest.raises(EngineError, match="401") as caught:
        await collect(make(api_key="wrong").synthesize(TEXT))
    assert caught.value.retryable is False and caught.value.engine == "cartesia"


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (403, False), (429, True), (500, True)])
async def test_error_messages(fake: FakeCartesia, make: Make, status: int, retryable: bool) -> None:
    fake.fail_status = status
    with pytest.raises(EngineError, match=str(status)) as caught:
        await collect(make().synthesize(TEXT))
    assert caught.value.retryable is retryable and not isinstance(caught.value, EngineUnavailable)


async def test_unknown_voice_is_final(fake: FakeCartesia, make: Make) -> None:
    with pytest.raises(EngineError, match="unknown voice") as caught:
        await collect(make(voice="no-such-voice").synthesize(TEXT))
    assert caught.value.retryable is False


async def test_http_500_at_the_handshake_is_retryable(fake: FakeCartesia, make: Make) -> None:
    fake.faults.set(Fault.HTTP_500)
    with pytest.raises(EngineError, match="500") as caught:
        await collect(make().synthesize(TEXT))
    assert caught.value.retryable is True


async def test_http_429_carries_retry_after(fake: FakeCartesia, make: Make) -> None:
    fake.faults.set(Fault.HTTP_429, retry_after=3)
    with pytest.raises(EngineError, match="429") as caught:
        await collect(make().synthesize(TEXT))
    assert caught.value.retryable is True and caught.value.retry_after == 3.0


async def test_malformed_message_fails_after_the_audio(fake: FakeCartesia, make: Make) -> None:
    fake.faults.set(Fault.MALFORMED)
    received: list[bytes] = []
    with pytest.raises(EngineError, match="malformed") as caught:
        async for chunk in make().synthesize(TEXT):
            received.append(chunk)
    assert caught.value.retryable is True
    assert sum(map(len, received)) == fake.last.sent > 0


async def test_disconnect_mid_stream_fails_after_the_audio(fake: FakeCartesia, make: Make) -> None:
    fake.faults.set(Fault.DISCONNECT)
    received: list[bytes] = []
    with pytest.raises(EngineError, match="before it was done") as caught:
        async for chunk in make().synthesize(TEXT):
            received.append(chunk)
    assert caught.value.retryable is True and not isinstance(caught.value, EngineUnavailable)
    assert 0 < sum(map(len, received)) <= fake.last.sent and not fake.last.done


async def test_stall_times_out_on_the_first_byte_budget(fake: FakeCartesia, make: Make) -> None:
    fake.faults.set(Fault.STALL)
    started = time.monotonic()
    with pytest.raises(EngineError, match="before the first byte") as caught:
        await collect(make(timeout=0.3, total_timeout=1.0).synthesize(TEXT))
    assert caught.value.retryable is True
    assert time.monotonic() - started < 1.0 + 2.0  # Well short of a hang; slack for a loaded machine.


async def test_stall_mid_stream_hits_the_total_timeout(fake: FakeCartesia, make: Make) -> None:
    fake.gate = threading.Event()  # Never set: the stream stops after its first piece.
    received: list[bytes] = []
    with pytest.raises(EngineError, match="mid-stream") as caught:
        async for chunk in make(timeout=0.5, total_timeout=0.8).synthesize(TEXT):
            received.append(chunk)
    assert caught.value.retryable is True and received
    fake.gate.set()


async def test_slow_first_byte_within_and_past_the_budget(fake: FakeCartesia, make: Make) -> None:
    fake.faults.set(Fault.SLOW_FIRST_BYTE, delay=0.4)
    assert await collect(make(timeout=2.0).synthesize(TEXT))
    with pytest.raises(EngineError, match="before the first byte") as caught:
        await collect(make(timeout=0.1).synthesize(TEXT))
    assert caught.value.retryable is True


async def test_check(fake: FakeCartesia, make: Make) -> None:
    await make().check()
    with pytest.raises(EngineError, match="401") as caught:
        await make(api_key="wrong").check()
    assert caught.value.retryable is False
    assert fake.requests == []  # Handshakes only: no speech was paid for.


async def test_closed_port_is_unavailable(make: Make) -> None:
    tts = make(base_url=f"ws://127.0.0.1:{free_port()}")
    with pytest.raises(EngineUnavailable):
        await tts.check()
    with pytest.raises(EngineUnavailable):
        await collect(tts.synthesize(TEXT))
