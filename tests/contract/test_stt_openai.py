"""OpenAISTT (official SDK) against a loopback server speaking OpenAI's /v1/audio/transcriptions."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np
import pytest

from hark.audio import pcm16_to_float
from hark.config import ProviderConfig, Settings
from hark.engines import registry
from hark.engines.base import STT, Float32Array
from hark.engines.stt.openai_stt import OpenAISTT
from hark.errors import ConfigError, EngineError
from tests.contract.faults import Fault
from tests.contract.harness import engine_factory
from tests.contract.servers.common import serving
from tests.contract.servers.openai_stt_server import FakeOpenAISTT
from tests.contract.stt_contract import STTContract
from tests.servers import ThreadedServer
from tests.speech import speak

Make = Callable[..., OpenAISTT]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeOpenAISTT, ThreadedServer]]:
    with serving(FakeOpenAISTT()) as running:
        yield running


@pytest.fixture
async def make(server: tuple[FakeOpenAISTT, ThreadedServer]) -> AsyncIterator[Make]:
    defaults = {"api_key": server[0].api_key, "timeout": 2.0, "total_timeout": 5.0}
    async with engine_factory(
        OpenAISTT.from_config, "openai", server[1].base_url + "/v1", **defaults
    ) as build:
        yield build


class TestSTTContract(STTContract):
    engine, engine_class, key_env = "openai", OpenAISTT, "OPENAI_API_KEY"
    closed_url = "http://127.0.0.1:{port}/v1"
    timed_out = "timed out"
    malformed = (b"{this is not json", b'{"transcript": "wrong shape"}', b'{"text": 42}')


async def test_transcribes_and_uploads_a_valid_wav(
    fake: FakeOpenAISTT, make: Make, pcm: bytes, audio: Float32Array
) -> None:
    stt = make()
    assert isinstance(stt, STT) and stt.sample_rate == 16000
    assert not stt.capabilities.streaming and not stt.capabilities.interim_results
    transcript = await stt.transcribe(audio)
    assert transcript.text == fake.transcript
    assert transcript.language == "en"
    assert transcript.duration_s == pytest.approx(len(pcm) / 2 / 16000)
    [upload] = fake.uploads
    assert (upload.rate, upload.channels, upload.width) == (16000, 1, 2)
    assert upload.sha256 == hashlib.sha256(pcm).hexdigest()


async def test_request_shape(fake: FakeOpenAISTT, make: Make, audio: Float32Array) -> None:
    await make().transcribe(audio)
    [upload] = fake.uploads
    assert upload.authorization == f"Bearer {fake.api_key}"
    assert upload.filename == "audio.wav" and upload.content_type == "audio/wav"
    assert upload.fields == {"model": "gpt-4o-mini-transcribe", "language": "en", "response_format": "json"}


async def test_model_language_and_options(fake: FakeOpenAISTT, make: Make, audio: Float32Array) -> None:
    stt = make(model="whisper-1", language="de", options={"prompt": "kitchen, timer", "temperature": 0})
    await stt.transcribe(audio)
    await stt.transcribe(audio, language="fr")
    first, second = (u.fields for u in fake.uploads)
    assert first["model"] == "whisper-1" and first["language"] == "de"
    assert first["prompt"] == "kitchen, timer" and first["temperature"] == "0"
    assert second["language"] == "fr"


async def test_no_language_sends_none(fake: FakeOpenAISTT, make: Make, audio: Float32Array) -> None:
    stt = OpenAISTT(api_key=fake.api_key, base_url=make().base_url, language=None)
    try:
        await stt.transcribe(audio)
    finally:
        await stt.aclose()
    assert "language" not in fake.uploads[0].fields


async def test_bad_config_is_a_config_error(make: Make) -> None:
    with pytest.raises(ConfigError, match="chunking"):
        make(options={"chunking": "auto"})
    with pytest.raises(ConfigError, match="http"):
        make(base_url="ws://127.0.0.1:1/v1")


async def test_empty_audio_sends_nothing(fake: FakeOpenAISTT, make: Make) -> None:
    assert (await make().transcribe(np.zeros(0, dtype=np.float32))).text == ""
    assert fake.uploads == []


async def test_rejected_key_is_final(fake: FakeOpenAISTT, make: Make, audio: Float32Array) -> None:
    with pytest.raises(EngineError) as caught:
        await make(api_key="wrong").transcribe(audio)
    assert not caught.value.retryable and "401" in str(caught.value)


async def test_disconnect_mid_response_is_retryable(
    fake: FakeOpenAISTT, make: Make, audio: Float32Array
) -> None:
    fake.faults.set(Fault.DISCONNECT)
    with pytest.raises(EngineError) as caught:
        await make().transcribe(audio)
    assert caught.value.retryable  # The SDK calls a cut connection a connection error.


async def test_stall_ends_at_the_total_timeout(fake: FakeOpenAISTT, make: Make, audio: Float32Array) -> None:
    fake.faults.set(Fault.STALL)
    started = time.monotonic()
    with pytest.raises(EngineError, match="timed out") as caught:
        await make(timeout=30, total_timeout=0.4).transcribe(audio)
    assert caught.value.retryable and time.monotonic() - started < 2.0


async def test_check(fake: FakeOpenAISTT, make: Make) -> None:
    await make().check()
    assert fake.model_checks == [f"Bearer {fake.api_key}"] and fake.uploads == []
    with pytest.raises(EngineError) as caught:
        await make(api_key="wrong").check()
    assert not caught.value.retryable


async def test_local_server_needs_no_key(
    fake: FakeOpenAISTT, server: tuple[FakeOpenAISTT, ThreadedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = ProviderConfig(kind="openai", base_url=server[1].base_url + "/v1")
    stt = OpenAISTT.from_config(provider, Settings())
    try:
        with pytest.raises(EngineError) as caught:  # Built fine; this stand-in does want a key.
            await stt.check()
        assert not caught.value.retryable
    finally:
        await stt.aclose()
    assert fake.model_checks == ["Bearer none"]


async def test_registry_builds_it(fake: FakeOpenAISTT, server: tuple[FakeOpenAISTT, ThreadedServer]) -> None:
    provider = ProviderConfig(
        kind="openai", name="whisper", base_url=server[1].base_url + "/v1", api_key=fake.api_key
    )
    stt = registry.build("stt", provider, Settings())
    try:
        assert isinstance(stt, OpenAISTT) and stt.name == "whisper"
        assert (await stt.transcribe(pcm16_to_float(speak("hello", rate=16000)))).text == fake.transcript
    finally:
        await stt.aclose()
