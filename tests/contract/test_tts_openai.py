"""OpenAITTS (official SDK) against a loopback server speaking OpenAI's /v1/audio/speech."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from hark.engines.tts.openai_tts import OpenAITTS
from tests.contract.harness import engine_factory
from tests.contract.servers.common import collect, serving
from tests.contract.servers.openai_tts_server import FakeOpenAISpeech
from tests.contract.tts_contract import TEXT, HTTPStreamingTTSContract
from tests.servers import ThreadedServer

Make = Callable[..., OpenAITTS]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeOpenAISpeech, ThreadedServer]]:
    with serving(FakeOpenAISpeech()) as running:
        yield running


@pytest.fixture
async def make(server: tuple[FakeOpenAISpeech, ThreadedServer]) -> AsyncIterator[Make]:
    defaults = {"api_key": "test-key", "timeout": 2.0, "total_timeout": 5.0}
    async with engine_factory(
        OpenAITTS.from_config, "openai", server[1].base_url + "/v1", **defaults
    ) as build:
        yield build


class TestStreamingContract(HTTPStreamingTTSContract):
    engine, engine_class, key_env = "openai", OpenAITTS, "OPENAI_API_KEY"
    closed_url = "http://127.0.0.1:{port}/v1"
    sent_test_key = "Bearer test-key"

    def sent_key(self, fake: FakeOpenAISpeech) -> str | None:
        return fake.requests[0]["auth"]  # type: ignore[no-any-return]


async def test_request_shape_and_auth(fake: FakeOpenAISpeech, make: Make) -> None:
    await collect(make().synthesize(TEXT))
    [request] = fake.requests
    assert request["auth"] == "Bearer test-key"
    assert request["body"] == {
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "input": TEXT,
        "response_format": "pcm",
    }


async def test_model_voice_and_options(fake: FakeOpenAISpeech, make: Make) -> None:
    tts = make(model="tts-1", voice="nova", options={"speed": 1.25, "instructions": "calm", "other": 1})
    await collect(tts.synthesize("Hi."))
    body = fake.requests[0]["body"]
    assert (body["model"], body["voice"], body["speed"], body["instructions"]) == (
        "tts-1",
        "nova",
        1.25,
        "calm",
    )
    assert "other" not in body


async def test_blank_text_sends_nothing(fake: FakeOpenAISpeech, make: Make) -> None:
    assert await collect(make().synthesize("\n")) == []
    assert fake.requests == []
