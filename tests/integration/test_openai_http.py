"""The OpenAI-compatible HTTP endpoints, driven by the official openai SDK."""

from __future__ import annotations

import base64
import io
import json
import re
import time

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


SPEECH_TEXT = "Hello from hark. This sentence is spoken by the local Piper voice. And here is a third one."


def decoded_seconds(data: bytes, fmt: str) -> float:
    if fmt == "pcm":
        return len(data) / 2 / 24_000
    with av.open(io.BytesIO(data), mode="r") as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
        rate = container.streams.audio[0].sample_rate
    return samples / rate


@pytest.fixture(scope="module")
async def wav_seconds(hark_server: HarkProcess) -> float:
    async with client(hark_server) as api:
        response = await api.audio.speech.create(
            model="tts-1", voice="alloy", input=SPEECH_TEXT, response_format="wav"
        )
    return decoded_seconds(response.content, "wav")


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
async def test_speech_in_every_format_decodes_to_the_same_duration(
    hark_server: HarkProcess, wav_seconds: float, fmt: str
) -> None:
    async with client(hark_server) as api:
        response = await api.audio.speech.create(
            model="tts-1",
            voice="nova",
            input=SPEECH_TEXT,
            response_format=fmt,  # type: ignore[arg-type]
        )
    assert 4.0 < wav_seconds < 12.0
    # Lossy codecs add priming and padding (mp3 up to ~70 ms, aac up to ~90 ms).
    assert abs(decoded_seconds(response.content, fmt) - wav_seconds) < 0.12


async def test_speech_streams_before_the_end(hark_server: HarkProcess) -> None:
    long_text = " ".join(f"This is sentence {n} of a longer reading." for n in range(1, 9))
    async with (
        client(hark_server) as api,
        api.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=long_text, response_format="pcm"
        ) as response,
    ):
        arrivals = []
        started = time.monotonic()
        async for chunk in response.iter_bytes():
            arrivals.append((time.monotonic() - started, len(chunk)))
    assert len(arrivals) >= 4
    first_at, last_at = arrivals[0][0], arrivals[-1][0]
    print(f"\nspeech: first bytes after {first_at * 1000:.0f} ms, last after {last_at * 1000:.0f} ms")
    assert first_at < last_at / 2


async def test_speech_sse_and_speed(hark_server: HarkProcess, wav_seconds: float) -> None:
    async with httpx.AsyncClient(base_url=hark_server.base_url, timeout=60) as http:
        body = {
            "model": "tts-1",
            "voice": "alloy",
            "input": SPEECH_TEXT,
            "response_format": "pcm",
            "stream_format": "sse",
        }
        response = await http.post("/v1/audio/speech", json=body)
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1]["type"] == "speech.audio.done"
        pcm = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
        assert abs(len(pcm) / 2 / 24_000 - wav_seconds) < 0.05
        fast = await http.post("/v1/audio/speech", json={**body, "stream_format": "audio", "speed": 2.0})
        assert abs(len(fast.content) / 2 / 24_000 - wav_seconds / 2) < 0.3


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"input": "x" * 4097}, "input"),
        ({"speed": 4.5}, "speed"),
        ({"speed": 0.1}, "speed"),
        ({"response_format": "ogg"}, "response_format"),
        ({"voice": "robot"}, "voice"),
        ({"input": ""}, "input"),
    ],
)
async def test_speech_bad_input_is_a_400(
    hark_server: HarkProcess, change: dict[str, object], param: str
) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **change}
    async with httpx.AsyncClient(base_url=hark_server.base_url) as http:
        response = await http.post("/v1/audio/speech", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
