"""ElevenLabsTTS against a loopback server speaking the ElevenLabs streaming wire format."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from hark.config import ProviderConfig, Settings
from hark.engines.tts.elevenlabs import ElevenLabsTTS
from hark.errors import ConfigError, EngineError
from tests.contract.harness import engine_factory
from tests.contract.servers.common import collect, serving
from tests.contract.servers.elevenlabs_server import VOICE, FakeElevenLabs
from tests.contract.tts_contract import TEXT, HTTPStreamingTTSContract
from tests.servers import ThreadedServer

Make = Callable[..., ElevenLabsTTS]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeElevenLabs, ThreadedServer]]:
    with serving(FakeElevenLabs()) as running:
        yield running


@pytest.fixture
async def make(server: tuple[FakeElevenLabs, ThreadedServer]) -> AsyncIterator[Make]:
    defaults = {"voice": VOICE, "api_key": "test-key", "timeout": 2.0, "total_timeout": 5.0}
    async with engine_factory(
        ElevenLabsTTS.from_config, "elevenlabs", server[1].base_url, **defaults
    ) as build:
        yield build


class TestStreamingContract(HTTPStreamingTTSContract):
    engine, engine_class, key_env = "elevenlabs", ElevenLabsTTS, "ELEVENLABS_API_KEY"
    voice = VOICE
    closed_url = "http://127.0.0.1:{port}"
    sent_test_key = "test-key"

    def sent_key(self, fake: FakeElevenLabs) -> str | None:
        return fake.requests[0]["key"]  # type: ignore[no-any-return]

    async def test_check(self, fake: FakeElevenLabs, make: Make) -> None:
        await super().test_check(fake, make)
        with pytest.raises(EngineError, match="404"):
            await make(voice="no-such-voice").check()
        assert fake.requests == []  # No synthesis was paid for.


async def test_request_shape_and_auth(fake: FakeElevenLabs, make: Make) -> None:
    await collect(make().synthesize(TEXT))
    [request] = fake.requests
    assert request["voice"] == VOICE
    assert request["query"] == {"output_format": "pcm_24000"}
    assert request["key"] == "test-key"
    assert request["body"] == {"text": TEXT, "model_id": "eleven_flash_v2_5"}


async def test_output_format_and_model_options(fake: FakeElevenLabs, make: Make) -> None:
    tts = make(model="eleven_turbo_v2_5", options={"output_format": "pcm_16000"})
    assert tts.sample_rate == 16000
    chunks = await collect(tts.synthesize("Hi."))
    assert sum(map(len, chunks)) == 3 * 16000 * 10 // 1000 * 2
    assert fake.requests[0]["query"]["output_format"] == "pcm_16000"
    assert fake.requests[0]["body"]["model_id"] == "eleven_turbo_v2_5"


def test_voice_is_required() -> None:
    with pytest.raises(ConfigError, match="voice"):
        ElevenLabsTTS.from_config(ProviderConfig(kind="elevenlabs", api_key="k"), Settings())


def test_output_format_must_be_pcm() -> None:
    provider = ProviderConfig(kind="elevenlabs", voice=VOICE, api_key="k", options={"output_format": "mp3"})
    with pytest.raises(ConfigError, match="pcm_"):
        ElevenLabsTTS.from_config(provider, Settings())


async def test_blank_text_sends_nothing(fake: FakeElevenLabs, make: Make) -> None:
    assert await collect(make().synthesize("  ")) == []
    assert fake.requests == []
