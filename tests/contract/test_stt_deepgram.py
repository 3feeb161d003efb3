"""DeepgramSTT against a loopback server speaking Deepgram's live WebSocket API."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from hark.config import ProviderConfig, Settings
from hark.engines import registry
from hark.engines.base import STT, Float32Array
from hark.engines.stt.deepgram import DeepgramSTT, InterimTranscript
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.contract.harness import engine_factory
from tests.contract.servers.deepgram_server import FakeDeepgram
from tests.contract.stt_contract import STTContract

Make = Callable[..., DeepgramSTT]


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[FakeDeepgram]:
    async with FakeDeepgram().running() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeDeepgram) -> FakeDeepgram:
    server.reset()
    return server


@pytest.fixture
async def make(server: FakeDeepgram) -> AsyncIterator[Make]:
    defaults = {"api_key": server.api_key, "timeout": 2.0, "total_timeout": 5.0}
    async with engine_factory(DeepgramSTT.from_config, "deepgram", server.base_url, **defaults) as build:
        yield build


class TestSTTContract(STTContract):
    """HTTP_500 and HTTP_429 strike at the WebSocket upgrade."""

    engine, engine_class, key_env = "deepgram", DeepgramSTT, "DEEPGRAM_API_KEY"
    closed_url = "ws://127.0.0.1:{port}"
    timed_out = "no result in time"
    malformed = ("{this is not json", '{"type": "Results", "channel": {}}', "[1, 2]")

    async def test_stall_ends_at_the_result_timeout(
        self, fake: FakeDeepgram, make: Make, audio: Float32Array
    ) -> None:
        await super().test_stall_ends_at_the_result_timeout(fake, make, audio)
        assert len(fake.requests[0].audio) == audio.size * 2  # it failed waiting, not sending

    def test_missing_key_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().test_missing_key_names_the_variable(monkeypatch)
        monkeypatch.setenv("MY_STT_KEY", "from-env")
        stt = DeepgramSTT.from_config(ProviderConfig(kind="deepgram", api_key_env="MY_STT_KEY"), Settings())
        assert stt.listen_url == "wss://api.deepgram.com/v1/listen"


async def test_transcribes_the_scripted_text_and_delivers_every_byte(
    fake: FakeDeepgram, make: Make, pcm: bytes, audio: Float32Array
) -> None:
    stt = make()
    assert isinstance(stt, STT) and stt.sample_rate == 16000
    assert stt.capabilities.streaming and stt.capabilities.interim_results
    transcript = await stt.transcribe(audio)
    assert transcript.text == fake.transcript
    assert transcript.language == "en"  # settings.stt.language
    assert transcript.duration_s == pytest.approx(len(pcm) / 2 / 16000)
    [request] = fake.requests
    assert len(request.audio) == len(pcm) and request.sha256 == hashlib.sha256(pcm).hexdigest()
    assert len(request.frames) > 10 and max(request.frames) == 3200  # 100 ms frames
    assert request.controls == [{"type": "CloseStream"}]


async def test_request_shape(fake: FakeDeepgram, make: Make, audio: Float32Array) -> None:
    await make().transcribe(audio)
    [request] = fake.requests
    assert request.authorization == f"Token {fake.api_key}"
    assert request.query == {
        "model": "nova-3",
        "encoding": "linear16",
        "sample_rate": "16000",
        "channels": "1",
        "interim_results": "true",
        "punctuate": "true",
        "language": "en",
    }


async def test_model_language_and_options(fake: FakeDeepgram, make: Make, audio: Float32Array) -> None:
    stt = make(model="nova-2", language="de", options={"endpointing": 300, "smart_format": True})
    await stt.transcribe(audio)
    await stt.transcribe(audio, language="fr")
    first, second = (r.query for r in fake.requests)
    assert first["model"] == "nova-2" and first["language"] == "de"
    assert first["endpointing"] == "300" and first["smart_format"] == "true"
    assert second["language"] == "fr"


async def test_unknown_option_is_a_config_error(make: Make) -> None:
    with pytest.raises(ConfigError, match="diarise"):
        make(options={"diarise": True})


@pytest.mark.parametrize("form", ["ws://{}", "ws://{}/v1", "ws://{}/v1/listen/", "http://{}"])
async def test_base_url_forms(fake: FakeDeepgram, make: Make, audio: Float32Array, form: str) -> None:
    stt = make(base_url=form.format(fake.base_url.removeprefix("ws://")))
    assert stt.listen_url == fake.base_url + "/v1/listen"
    assert (await stt.transcribe(audio)).text == fake.transcript


async def test_stream_yields_interim_results_before_the_final(
    fake: FakeDeepgram, make: Make, audio: Float32Array
) -> None:
    fed: list[int] = []

    async def live() -> AsyncIterator[Float32Array]:
        for start in range(0, audio.size, 1600):  # 100 ms at a time, faster than real time
            fed.append(start)
            yield audio[start : start + 1600]
            await asyncio.sleep(0.01)

    results: list[tuple[InterimTranscript, int]] = []
    async for result in make().stream(live()):
        results.append((result, len(fed)))
    chunks = -(-audio.size // 1600)
    first, fed_then = results[0]
    assert not first.is_final and fed_then < chunks  # it arrived while audio was still going up
    finals = [r for r, _ in results if r.is_final]
    assert [r.is_final for r, _ in results] == [False, True, False, True]
    assert " ".join(r.text for r in finals) == fake.transcript
    assert finals[-1].speech_final and not finals[0].speech_final
    assert len(fake.requests[0].audio) == audio.size * 2


async def test_empty_audio_opens_no_connection(fake: FakeDeepgram, make: Make) -> None:
    transcript = await make().transcribe(np.zeros(0, dtype=np.float32))
    assert transcript.text == "" and fake.requests == []


@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_key_is_final(
    fake: FakeDeepgram, make: Make, audio: Float32Array, status: int
) -> None:
    fake.auth_status = status
    with pytest.raises(EngineError) as caught:
        await make(api_key="wrong").transcribe(audio)
    assert not caught.value.retryable and str(status) in str(caught.value)
    assert "Invalid credentials" in str(caught.value)


async def test_disconnect_mid_stream_is_retryable(
    fake: FakeDeepgram, make: Make, audio: Float32Array
) -> None:
    fake.faults.set(Fault.DISCONNECT)
    with pytest.raises(EngineError, match="mid-way") as caught:
        await make().transcribe(audio)
    assert caught.value.retryable and not isinstance(caught.value, EngineUnavailable)


async def test_stall_ends_at_the_total_timeout(fake: FakeDeepgram, make: Make, audio: Float32Array) -> None:
    fake.faults.set(Fault.STALL)

    async def endless() -> AsyncIterator[Float32Array]:
        while True:  # A live source that never ends: only total_timeout can stop it.
            yield audio[:1600]
            await asyncio.sleep(0.02)

    started = time.monotonic()
    with pytest.raises(EngineError, match="no result in time"):
        async for _ in make(timeout=5, total_timeout=0.5).stream(endless()):
            pass
    assert time.monotonic() - started < 2.0


async def test_fault_applies_only_as_often_as_planned(
    fake: FakeDeepgram, make: Make, audio: Float32Array
) -> None:
    fake.faults.set(Fault.HTTP_500, times=1)
    stt = make()
    with pytest.raises(EngineError):
        await stt.transcribe(audio)
    assert (await stt.transcribe(audio)).text == fake.transcript
    assert fake.faults.requests == 2


async def test_check_is_authenticated_and_sends_no_audio(fake: FakeDeepgram, make: Make) -> None:
    await make().check()
    assert fake.project_checks == [f"Token {fake.api_key}"] and fake.requests == []
    with pytest.raises(EngineError) as caught:
        await make(api_key="wrong").check()
    assert not caught.value.retryable and not isinstance(caught.value, EngineUnavailable)
    fake.auth_status = 403  # A key scoped to transcription only: it can still serve.
    await make(api_key="wrong").check()


async def test_self_hosted_needs_no_key(
    fake: FakeDeepgram, audio: Float32Array, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    fake.api_key = "unused"
    try:
        stt = DeepgramSTT.from_config(ProviderConfig(kind="deepgram", base_url=fake.base_url), Settings())
        with pytest.raises(EngineError):
            await stt.transcribe(audio)  # This stand-in does want a key...
        assert fake.requests[-1].authorization is None  # ...and none was sent, not "Token None".
    finally:
        fake.api_key = FakeDeepgram.api_key


async def test_registry_builds_it(fake: FakeDeepgram, audio: Float32Array) -> None:
    provider = ProviderConfig(kind="deepgram", name="dg", base_url=fake.base_url, api_key=fake.api_key)
    stt = registry.build("stt", provider, Settings())
    assert isinstance(stt, DeepgramSTT) and stt.name == "dg"
    assert (await stt.transcribe(audio)).text == fake.transcript
