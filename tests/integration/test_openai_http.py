"""The OpenAI-compatible HTTP endpoints, driven by the official openai SDK."""

from __future__ import annotations

import io
import re

import av
import httpx
import numpy as np
import openai
import pytest

from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer
from tests.speech import RATE, speak

pytestmark = pytest.mark.slow

SENTENCE = "Please call my mother tomorrow morning."


def client(server: HarkProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="none", max_retries=0)


def wav_bytes(pcm: bytes, rate: int = RATE) -> bytes:
    from tests.speech import write_wav

    buffer = io.BytesIO()
    write_wav(buffer, pcm, rate)
    return buffer.getvalue()


def mp3_bytes(pcm: bytes, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate)
        stream.layout = "mono"  # type: ignore[union-attr]
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(pcm, dtype="<i2").reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):  # type: ignore[union-attr]
            container.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            container.mux(packet)
    return buffer.getvalue()


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


@pytest.fixture(scope="module")
def speech_wav() -> bytes:
    return wav_bytes(speak(SENTENCE))


async def test_transcription_json_and_mp3_upload(hark_server: HarkProcess, speech_wav: bytes) -> None:
    async with client(hark_server) as api:
        result = await api.audio.transcriptions.create(model="whisper-1", file=("speech.wav", speech_wav))
        assert {"mother", "tomorrow"} <= words(result.text)
        mp3 = mp3_bytes(speak(SENTENCE))
        result = await api.audio.transcriptions.create(model="whisper-1", file=("speech.mp3", mp3))
        assert {"mother", "tomorrow"} <= words(result.text)


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt", "verbose_json"])
async def test_transcription_formats(hark_server: HarkProcess, speech_wav: bytes, fmt: str) -> None:
    async with client(hark_server) as api:
        result = await api.audio.transcriptions.create(
            model="whisper-1",
            file=("speech.wav", speech_wav),
            response_format=fmt,  # type: ignore[arg-type]
        )
    if fmt == "verbose_json":
        assert {"mother", "tomorrow"} <= words(result.text)  # type: ignore[union-attr]
        assert 1.5 < result.duration < 5  # type: ignore[union-attr]
        assert result.segments and result.segments[0].end > 1.5  # type: ignore[union-attr]
        return
    text = str(result)
    assert {"mother", "tomorrow"} <= words(text)
    if fmt == "srt":
        assert re.search(r"^1\n00:00:00,000 --> 00:00:0\d,\d{3}\n", text)
    if fmt == "vtt":
        assert text.startswith("WEBVTT\n\n00:00:00.000 --> ")


async def test_transcription_stream_and_translation(hark_server: HarkProcess, speech_wav: bytes) -> None:
    async with client(hark_server) as api:
        stream = await api.audio.transcriptions.create(
            model="whisper-1", file=("s.wav", speech_wav), stream=True
        )
        deltas, done = [], None
        async for event in stream:
            if event.type == "transcript.text.delta":
                deltas.append(event.delta)
            elif event.type == "transcript.text.done":
                done = event.text
        assert len(deltas) > 3 and "".join(deltas) == done and "mother" in words(done or "")
        with pytest.warns(
            DeprecationWarning
        ):  # the SDK marks translations deprecated; hark still serves them
            translated = await api.audio.translations.create(model="whisper-1", file=("s.wav", speech_wav))
        assert "mother" in words(translated.text)


async def test_bad_uploads_get_openai_error_bodies(hark_server: HarkProcess) -> None:
    async with client(hark_server) as api:
        with pytest.raises(openai.BadRequestError) as bad:
            await api.audio.transcriptions.create(
                model="whisper-1", file=("x.wav", b"this is not audio" * 50)
            )
        assert bad.value.body["code"] == "invalid_audio"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError) as bad:
            await api.audio.transcriptions.create(
                model="whisper-1",
                file=("x.wav", b"x"),
                response_format="docx",  # type: ignore[arg-type]
            )
        assert bad.value.body["param"] == "response_format"  # type: ignore[index]
    async with httpx.AsyncClient(base_url=hark_server.base_url, timeout=60) as http:
        big = bytes(25 * 1024 * 1024 + 10)
        response = await http.post(
            "/v1/audio/transcriptions", files={"file": ("big.wav", big)}, data={"model": "w"}
        )
        assert response.status_code == 413
        assert response.json()["error"]["param"] == "file"


async def test_chat_completions_through_the_llm_chain(
    hark_with_llm: HarkProcess, fake_llm: tuple[FakeChatLLM, ThreadedServer]
) -> None:
    llm, _ = fake_llm
    llm.reply = "Paris is sunny and mild today."
    async with client(hark_with_llm) as api:
        completion = await api.chat.completions.create(
            model="anything", messages=[{"role": "user", "content": "Weather in Paris?"}]
        )
        assert completion.choices[0].message.content == llm.reply
        assert completion.choices[0].finish_reason == "stop"
        stream = await api.chat.completions.create(
            model="anything", messages=[{"role": "user", "content": "Again?"}], stream=True
        )
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        assert len(pieces) > 3 and "".join(pieces) == llm.reply
        listed = await api.models.list()
        assert "stand-in" in [m.id for m in listed.data]
    assert llm.requests[-1]["body"]["messages"] == [{"role": "user", "content": "Again?"}]


async def test_chat_without_llm_is_a_clear_503(hark_server: HarkProcess) -> None:
    async with client(hark_server) as api:
        with pytest.raises(openai.InternalServerError) as error:
            await api.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
    assert error.value.status_code == 503
    assert "HARK_LLM_BASE_URL" in error.value.body["message"]  # type: ignore[index]
