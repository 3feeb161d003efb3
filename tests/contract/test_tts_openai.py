"""OpenAITTS (official SDK) against a loopback server speaking OpenAI's /v1/audio/speech."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from hark.config import ProviderConfig, Settings
from hark.engines.base import TTS
from hark.engines.tts.openai_tts import OpenAITTS
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.contract.servers.elevenlabs_server import collect
from tests.contract.servers.openai_tts_server import FakeOpenAISpeech
from tests.servers import ThreadedServer, free_port

TEXT = "Hello there, this is a streaming test."
Make = Callable[..., OpenAITTS]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeOpenAISpeech, ThreadedServer]]:
    fake = FakeOpenAISpeech()
    with ThreadedServer(fake.app()) as srv:
        try:
            yield fake, srv
        finally:
            fake.closing = True


@pytest.fixture
def fake(server: tuple[FakeOpenAISpeech, ThreadedServer]) -> FakeOpenAISpeech:
    server[0].reset()
    return server[0]


@pytest.fixture
async def make(server: tuple[FakeOpenAISpeech, ThreadedServer]) -> AsyncIterator[Make]:
    engines: list[OpenAITTS] = []

    def build(base_url: str | None = None, **fields: Any) -> OpenAITTS:
        config: dict[str, Any] = {"api_key": "test-key", "timeout": 2.0, "total_timeout": 5.0}
        config.update(fields)
        url = base_url or server[1].base_url + "/v1"
        engines.append(
            OpenAITTS.from_config(ProviderConfig(kind="openai", base_url=url, **config), Settings())
        )
        return engines[-1]

    yield build
    for engine in engines:
        await engine.aclose()


async def test_streams_whole_samples_in_several_chunks(fake: FakeOpenAISpeech, make: Make) -> None:
    tts = make()
    assert isinstance(tts, TTS) and tts.capabilities.streaming and tts.sample_rate == 24000
    chunks = await collect(tts.synthesize(TEXT))
    assert len(chunks) >= 3
    assert all(len(c) % 2 == 0 and c for c in chunks)
    assert sum(map(len, chunks)) == fake.last.sent == len(TEXT) * 24000 * 10 // 1000 * 2
    assert fake.last.done


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


async def test_first_chunk_arrives_before_the_server_finishes(fake: FakeOpenAISpeech, make: Make) -> None:
    fake.gate = threading.Event()  # The server holds after its first piece until released.
    stream = make().synthesize(TEXT)
    first = await anext(stream)
    assert first and not fake.last.done
    fake.gate.set()
    rest = await collect(stream)
    assert fake.last.done and len(first) + sum(map(len, rest)) == fake.last.sent


async def test_api_key_from_the_environment(
    fake: FakeOpenAISpeech, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    await collect(make(api_key=None).synthesize("Hi."))
    assert fake.requests[0]["auth"] == "Bearer test-key"


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAITTS.from_config(ProviderConfig(kind="openai"), Settings())


async def test_blank_text_sends_nothing(fake: FakeOpenAISpeech, make: Make) -> None:
    assert await collect(make().synthesize("\n")) == []
    assert fake.requests == []


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (403, False), (408, True), (503, True)]
)
async def test_status_errors(fake: FakeOpenAISpeech, make: Make, status: int, retryable: bool) -> None:
    fake.fail_status = status
    with pytest.raises(EngineError, match=str(status)) as caught:
        await collect(make().synthesize(TEXT))
    assert caught.value.retryable is retryable and not isinstance(caught.value, EngineUnavailable)


async def test_wrong_key_is_final(fake: FakeOpenAISpeech, make: Make) -> None:
    with pytest.raises(EngineError, match="401") as caught:
        await collect(make(api_key="wrong").synthesize(TEXT))
    assert caught.value.retryable is False and caught.value.engine == "openai"


async def test_http_500_is_retryable(fake: FakeOpenAISpeech, make: Make) -> None:
    fake.faults.set(Fault.HTTP_500)
    with pytest.raises(EngineError, match="500") as caught:
        await collect(make().synthesize(TEXT))
    assert caught.value.retryable is True


async def test_http_429_carries_retry_after(fake: FakeOpenAISpeech, make: Make) -> None:
    fake.faults.set(Fault.HTTP_429, retry_after=3)
    with pytest.raises(EngineError, match="429") as caught:
        await collect(make().synthesize(TEXT))
    assert caught.value.retryable is True and caught.value.retry_after == 3.0
    assert fake.faults.requests == 1  # The SDK did not retry on its own.


async def test_malformed_stream_fails_after_the_audio(fake: FakeOpenAISpeech, make: Make) -> None:
    fake.faults.set(Fault.MALFORMED)
    received: list[bytes] = []
    with pytest.raises(EngineError, match="whole PCM16 samples") as caught:
        async for chunk in make().synthesize(TEXT):
            received.append(chunk)
    assert caught.value.retryable is True
    assert sum(map(len, received)) >= fake.last.sent > 0


async def test_disconnect_mid_stream_fails_after_the_audio(fake: FakeOpenAISpeech, make: Make) -> None:
    fake.faults.set(Fault.DISCONNECT)
    received: list[bytes] = []
    with pytest.raises(EngineError, match="broke off") as caught:
        async for chunk in make().synthesize(TEXT):
            received.append(chunk)
    assert caught.value.retryable is True and not isinstance(caught.value, EngineUnavailable)
    assert 0 < sum(map(len, received)) <= fake.last.sent and not fake.last.done


async def test_stall_times_out_on_the_first_byte_budget(fake: FakeOpenAISpeech, make: Make) -> None:
    fake.faults.set(Fault.STALL)
    started = time.monotonic()
    with pytest.raises(EngineError, match="before the first byte") as caught:
        await collect(make(timeout=0.3, total_timeout=1.0).synthesize(TEXT))
    assert caught.value.retryable is True
    assert time.monotonic() - started < 1.0 + 2.0  # Well short of a hang; slack for a loaded machine.


async def test_stall_mid_stream_hits_the_total_timeout(fake: FakeOpenAISpeech, make: Make) -> None:
    fake.gate = threading.Event()  # Never set: the stream stops after its first piece.
    received: list[bytes] = []
    with pytest.raises(EngineError, match="mid-stream") as caught:
        async for chunk in make(timeout=0.5, total_timeout=0.8).synthesize(TEXT):
            received.append(chunk)
    assert caught.value.retryable is True and received
    fake.gate.set()


async def test_slow_first_byte_within_and_past_the_budget(fake: FakeOpenAISpeech, make: Make) -> None:
    fake.faults.set(Fault.SLOW_FIRST_BYTE, delay=0.4)
    assert await collect(make(timeout=2.0).synthesize(TEXT))
    with pytest.raises(EngineError, match="before the first byte") as caught:
        await collect(make(timeout=0.1).synthesize(TEXT))
    assert caught.value.retryable is True


async def test_check(fake: FakeOpenAISpeech, make: Make) -> None:
    await make().check()
    with pytest.raises(EngineError, match="401") as caught:
        await make(api_key="wrong").check()
    assert caught.value.retryable is False
    assert fake.requests == []  # No speech was paid for.


async def test_closed_port_is_unavailable(make: Make) -> None:
    tts = make(base_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(EngineUnavailable):
        await tts.check()
    with pytest.raises(EngineUnavailable):
        await collect(tts.synthesize(TEXT))
