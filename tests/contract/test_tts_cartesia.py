"""CartesiaTTS against a loopback server speaking Cartesia's TTS WebSocket protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from hark.config import ProviderConfig, Settings
from hark.engines.tts.cartesia import CartesiaTTS
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.contract.harness import engine_factory
from tests.contract.servers.cartesia_server import VOICE, FakeCartesia, WebSocketServer
from tests.contract.servers.common import collect
from tests.contract.tts_contract import TEXT, StreamingTTSContract

Make = Callable[..., CartesiaTTS]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeCartesia, WebSocketServer]]:
    fake = FakeCartesia()
    with WebSocketServer(fake) as srv:
        yield fake, srv


@pytest.fixture
async def make(server: tuple[FakeCartesia, WebSocketServer]) -> AsyncIterator[Make]:
    defaults = {"voice": VOICE, "api_key": "test-key", "timeout": 2.0, "total_timeout": 5.0}
    async with engine_factory(CartesiaTTS.from_config, "cartesia", server[1].base_url, **defaults) as build:
        yield build


class TestStreamingContract(StreamingTTSContract):
    """The wrong key and HTTP_500/HTTP_429 faults strike at the WebSocket handshake; ``check``
    makes handshakes only."""

    engine, engine_class, key_env = "cartesia", CartesiaTTS, "CARTESIA_API_KEY"
    voice = VOICE
    closed_url = "ws://127.0.0.1:{port}"
    sent_test_key = "Bearer test-key"

    def sent_key(self, fake: FakeCartesia) -> str | None:
        return fake.handshakes[0]["auth"]  # type: ignore[no-any-return]


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


def test_voice_is_required() -> None:
    with pytest.raises(ConfigError, match="voice"):
        CartesiaTTS.from_config(ProviderConfig(kind="cartesia", api_key="k"), Settings())


async def test_blank_text_sends_nothing(fake: FakeCartesia, make: Make) -> None:
    assert await collect(make().synthesize("")) == []
    assert fake.handshakes == []


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
