"""DeepgramSTT against a loopback server speaking Deepgram's live WebSocket API."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from hark.audio import pcm16_to_float
from hark.config import ProviderConfig, Settings
from hark.engines import registry
from hark.engines.base import STT, Float32Array
from hark.engines.stt.deepgram import DeepgramSTT, InterimTranscript
from hark.errors import ConfigError, EngineError, EngineUnavailable
from tests.contract.faults import Fault
from tests.contract.servers.deepgram_server import FakeDeepgram
from tests.servers import free_port
from tests.speech import speak

UTTERANCE = "Turn on the kitchen lights, and set a timer for ten minutes."
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
    engines: list[DeepgramSTT] = []

    def build(base_url: str | None = None, **fields: Any) -> DeepgramSTT:
        config: dict[str, Any] = {"api_key": server.api_key, "timeout": 2.0, "total_timeout": 5.0}
        config.update(fields)
        provider = ProviderConfig(kind="deepgram", base_url=base_url or server.base_url, **config)
        engines.append(DeepgramSTT.from_config(provider, Settings()))
        return engines[-1]

    yield build
    for engine in engines:
        await engine.aclose()


@pytest.fixture(scope="module")
def pcm() -> bytes:
    """Real speech (espeak-ng) at 16 kHz, as PCM16: what the server must receive byte for byte."""
    return speak(UTTERANCE, rate=16000)


@pytest.fixture
def audio(pcm: bytes) -> Float32Array:
    return pcm16_to_float(pcm)


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


async def test_http_500_on_upgrade_is_retryable(fake: FakeDeepgram, make: Make, audio: Float32Array) -> None:
    fake.faults.set(Fault.HTTP_500)
    with pytest.raises(EngineError) as caught:
        await make().transcribe(audio)
    assert caught.value.retryable and not isinstance(caught.value, EngineUnavailable)
    assert "500" in str(caught.value) and caught.value.engine == "deepgram"


async def test_http_429_carries_retry_after(fake: FakeDeepgram, make: Make, audio: Float32Array) -> None:
    fake.faults.set(Fault.HTTP_429, retry_after=2)
    with pytest.raises(EngineError) as caught:
        await make().transcribe(audio)
    assert caught.value.retryable and caught.value.retry_after == 2.0


@pytest.mark.parametrize("payload", ["{this is not json", '{"type": "Results", "channel": {}}', "[1, 2]"])
async def test_malformed_message_is_retryable(
    fake: FakeDeepgram, make: Make, audio: Float32Array, payload: str
) -> None:
    fake.faults.set(Fault.MALFORMED)
    fake.malformed = payload
    with pytest.raises(EngineError, match="malformed") as caught:
        await make().transcribe(audio)
    assert caught.value.retryable


async def test_disconnect_mid_stream_is_retryable(
    fake: FakeDeepgram, make: Make, audio: Float32Array
) -> None:
    fake.faults.set(Fault.DISCONNECT)
    with pytest.raises(EngineError, match="mid-way") as caught:
        await make().transcribe(audio)
    assert caught.value.retryable and not isinstance(caught.value, EngineUnavailable)


async def test_stall_ends_at_the_result_timeout(fake: FakeDeepgram, make: Make, audio: Float32Array) -> None:
    fake.faults.set(Fault.STALL)
    started = time.monotonic()
    with pytest.raises(EngineError, match="no result in time") as caught:
        await make(timeout=0.3, total_timeout=30).transcribe(audio)
    assert caught.value.retryable and time.monotonic() - started < 2.0
    assert len(fake.requests[0].audio) == audio.size * 2  # it failed waiting, not sending


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


@pytest.mark.parametrize(("delay", "ok"), [(0.2, True), (1.2, False)])
async def test_slow_first_result(
    fake: FakeDeepgram, make: Make, audio: Float32Array, delay: float, ok: bool
) -> None:
    fake.faults.set(Fault.SLOW_FIRST_BYTE, delay=delay)
    stt = make(timeout=0.6)
    if ok:
        assert (await stt.transcribe(audio)).text == fake.transcript
    else:
        with pytest.raises(EngineError, match="no result in time"):
            await stt.transcribe(audio)


async def test_fault_applies_only_as_often_as_planned(
    fake: FakeDeepgram, make: Make, audio: Float32Array
) -> None:
    fake.faults.set(Fault.HTTP_500, times=1)
    stt = make()
    with pytest.raises(EngineError):
        await stt.transcribe(audio)
    assert (await stt.transcribe(audio)).text == fake.transcript
    assert fake.faults.requests == 2


async def test_closed_port_is_unavailable(make: Make, audio: Float32Array) -> None:
    stt = make(base_url=f"ws://127.0.0.1:{free_port()}")
    with pytest.raises(EngineUnavailable):
        await stt.transcribe(audio)
    with pytest.raises(EngineUnavailable):
        await stt.check()


async def test_check_is_authenticated_and_sends_no_audio(fake: FakeDeepgram, make: Make) -> None:
    await make().check()
    assert fake.project_checks == [f"Token {fake.api_key}"] and fake.requests == []
    with pytest.raises(EngineError) as caught:
        await make(api_key="wrong").check()
    assert not caught.value.retryable and not isinstance(caught.value, EngineUnavailable)
    fake.auth_status = 403  # A key scoped to transcription only: it can still serve.
    await make(api_key="wrong").check()


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="DEEPGRAM_API_KEY"):
        DeepgramSTT.from_config(ProviderConfig(kind="deepgram"), Settings())
    monkeypatch.delenv("MY_DG_KEY", raising=False)
    with pytest.raises(ConfigError, match="MY_DG_KEY"):
        DeepgramSTT.from_config(ProviderConfig(kind="deepgram", api_key_env="MY_DG_KEY"), Settings())
    monkeypatch.setenv("MY_DG_KEY", "from-env")
    stt = DeepgramSTT.from_config(ProviderConfig(kind="deepgram", api_key_env="MY_DG_KEY"), Settings())
    assert stt.listen_url == "wss://api.deepgram.com/v1/listen"


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
