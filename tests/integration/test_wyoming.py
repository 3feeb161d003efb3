"""Wyoming (Home Assistant) against a real `hark serve`, through the `wyoming` library's own
async client: describe, transcription (streamed and not), synthesis (streamed and not), the
handle program with the stand-in LLM and in echo mode, and the bad inputs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.handle import Handled
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from tests.servers import FakeChatLLM, HarkProcess, ThreadedServer, free_port
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

QUESTION = "What is the weather like in Paris today?"
LIMITS = {
    "HARK_WYOMING_ENABLED": "true",
    "HARK_WYOMING_IDLE_TIMEOUT_S": "6",
    "HARK_WYOMING_MAX_AUDIO_S": "8",
    "HARK_WYOMING_MAX_CONNECTIONS": "6",
    "HARK_WYOMING_MAX_EVENT_BYTES": str(256 * 1024),
}


class Wyoming(HarkProcess):
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.wyoming_port = free_port()
        super().__init__({**LIMITS, "HARK_WYOMING_PORT": str(self.wyoming_port), **env}, log_path)

    def client(self, read_timeout: float = 60) -> AsyncTcpClient:
        return AsyncTcpClient("127.0.0.1", self.wyoming_port, connect_timeout=5, read_timeout=read_timeout)


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wyoming]:
    log = tmp_path_factory.mktemp("wyoming-echo") / "server.log"
    with Wyoming({}, log) as server:
        yield server


@pytest.fixture(scope="module")
def with_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Wyoming, FakeChatLLM]]:
    llm = FakeChatLLM(reply="It is sunny in Paris. Take sunglasses.")
    log = tmp_path_factory.mktemp("wyoming-llm") / "server.log"
    with ThreadedServer(llm.app()) as llm_server:
        env = {
            "HARK_LLM_BASE_URL": llm_server.base_url + "/v1",
            "HARK_LLM_MODEL": "stand-in",
            "HARK_CONVERSATION_TOOLS": '["current_time"]',
        }
        with Wyoming(env, log) as server:
            yield server, llm


async def read_until(client: AsyncTcpClient, last: str, limit: int = 100_000) -> list[Event]:
    events: list[Event] = []
    while len(events) < limit:
        event = await client.read_event()
        assert event is not None, f"connection closed before {last}; got {[e.type for e in events]}"
        events.append(event)
        if event.type in (last, "error"):
            return events
    raise AssertionError(f"no {last} in {limit} events")


def pcm_of(events: list[Event]) -> tuple[bytes, int]:
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    assert chunks, "no audio"
    assert {(c.rate, c.width, c.channels) for c in chunks} == {(chunks[0].rate, 2, 1)}
    return b"".join(c.audio for c in chunks), chunks[0].rate


def assert_speech(pcm: bytes, rate: int, min_s: float) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    seconds = len(samples) / rate
    rms = float(np.sqrt(np.mean(samples**2)))
    assert seconds > min_s and rms > 0.02, (seconds, rms)
    return seconds


async def send_audio(
    client: AsyncTcpClient, pcm: bytes, rate: int, *, chunk_ms: int = 100, pace: float = 0.0
) -> None:
    step = rate * chunk_ms // 1000 * 2
    for offset in range(0, len(pcm), step):
        await client.write_event(AudioChunk(rate, 2, 1, pcm[offset : offset + step]).event())
        if pace:
            await asyncio.sleep(chunk_ms / 1000 / pace)


async def transcribe(server: Wyoming, pcm: bytes, rate: int) -> str:
    async with server.client() as client:
        await client.write_event(AudioStart(rate, 2, 1).event())
        await send_audio(client, pcm, rate)
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript")
    return str(Transcript.from_event(events[-1]).text)


# -- describe ------------------------------------------------------------------------------


async def test_describe_advertises_what_hark_serves(echo: Wyoming) -> None:
    async with echo.client() as client:
        await client.write_event(Describe().event())
        info = Info.from_event((await read_until(client, "info"))[-1])
    (asr,) = info.asr
    assert asr.supports_transcript_streaming and asr.installed
    assert [(m.name, m.languages) for m in asr.models] == [("tiny.en", ["en"])]
    (tts,) = info.tts
    assert tts.supports_synthesize_streaming
    assert [(v.name, v.languages) for v in tts.voices] == [("en_US-joe-medium", ["en_US"])]
    (handle,) = info.handle
    assert handle.supports_handled_streaming
    assert [m.name for m in handle.models] == ["echo"]


# -- asr -----------------------------------------------------------------------------------


async def test_transcribe_espeak_speech(echo: Wyoming) -> None:
    rate = 16_000
    pcm = speak(QUESTION, rate=rate) + silence(300, rate)
    async with echo.client() as client:
        await client.write_event(Transcribe(language="en-US").event())
        await client.write_event(AudioStart(rate, 2, 1).event())
        await send_audio(client, pcm, rate)
        sent = time.perf_counter()
        await client.write_event(AudioStop().event())
        events = await read_until(client, "transcript")
        took = time.perf_counter() - sent
        stop = await client.read_event()
    transcript = Transcript.from_event(events[-1])
    print(f"\nwyoming transcript in {took * 1000:.0f} ms after audio-stop: {transcript.text!r}")
    words = transcript.text.lower()
    assert "weather" in words and "paris" in words
    assert events[0].type == "transcript-start"
    assert stop is not None and stop.type == "transcript-stop"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


async def test_streamed_transcript_chunks_arrive_while_speaking(echo: Wyoming) -> None:
    # 22.05 kHz (resampled inside hark), sent in real time as a satellite would.
    rate = 22_050
    pcm = speak("Turn on the kitchen lights and play some music please.", rate=rate) + silence(1500, rate)
    chunks_before_stop: list[str] = []
    async with echo.client() as client:
        await client.write_event(AudioStart(rate, 2, 1).event())

        async def collect() -> list[Event]:
            events: list[Event] = []
            while (event := await client.read_event()) is not None:
                events.append(event)
                if event.type == "transcript-chunk" and not stopped.is_set():
                    chunks_before_stop.append(event.data["text"])
                if event.type == "transcript-stop":
                    break
            return events

        stopped = asyncio.Event()
        reader = asyncio.create_task(collect())
        await send_audio(client, pcm, rate, pace=1.0)
        stopped.set()
        await client.write_event(AudioStop().event())
        events = await asyncio.wait_for(reader, 60)
    kinds = [e.type for e in events]
    assert kinds[0] == "transcript-start" and kinds[-2:] == ["transcript", "transcript-stop"]
    chunks = "".join(e.data["text"] for e in events if e.type == "transcript-chunk")
    final = " ".join(Transcript.from_event(events[-2]).text.split())
    before = len(chunks_before_stop)
    print(f"\nstreamed: {before} chunk(s) before audio-stop; chunks {chunks!r}; final {final!r}")
    assert chunks_before_stop, "no transcript-chunk while the audio was still coming"
    # The chunks are the partials' settled words; the final transcript is authoritative and
    # may capitalise or punctuate them differently (a partial began "turn on" on a loaded box).
    said, streamed = _words(final), _words(chunks)
    assert said[: len(streamed)] == streamed
    assert "kitchen" in said


# -- tts -----------------------------------------------------------------------------------


async def test_synthesize_returns_speech_that_transcribes_back(echo: Wyoming) -> None:
    text = "Hello from the kitchen. The lights are now on."
    async with echo.client() as client:
        sent = time.perf_counter()
        await client.write_event(Synthesize(text).event())
        first = await client.read_event()
        assert first is not None and first.type == "audio-start"
        chunk = await client.read_event()
        first_audio_s = time.perf_counter()
        assert chunk is not None and chunk.type == "audio-chunk"
        events = [first, chunk, *await read_until(client, "audio-stop")]
        first_audio = next(i for i, e in enumerate(events) if e.type == "audio-chunk")
        took = time.perf_counter() - sent
    first_s = first_audio_s - sent
    assert [e.type for e in events].count("audio-start") == 1
    assert events[first_audio - 1].type == "audio-start"
    pcm, rate = pcm_of(events)
    seconds = assert_speech(pcm, rate, 2.0)
    heard = (await transcribe(echo, pcm, rate)).lower()
    print(
        f"\nwyoming synthesize: first audio after {first_s * 1000:.0f} ms, {seconds:.2f} s of audio "
        f"at {rate} Hz in {took:.2f} s; heard {heard!r}"
    )
    assert "kitchen" in heard and "lights" in heard


async def test_streamed_synthesis_speaks_before_the_text_is_complete(echo: Wyoming) -> None:
    text = "Sure, I can help with that. The oven is preheating to two hundred degrees now."
    words = text.split(" ")
    async with echo.client() as client:
        await client.write_event(SynthesizeStart().event())
        started = time.perf_counter()
        first_audio: float | None = None
        events: list[Event] = []

        async def collect() -> None:
            nonlocal first_audio
            while (event := await client.read_event()) is not None:
                events.append(event)
                if event.type == "audio-chunk" and first_audio is None:
                    first_audio = time.perf_counter() - started
                if event.type in ("synthesize-stopped", "error"):
                    return

        reader = asyncio.create_task(collect())
        for i, word in enumerate(words):  # an LLM's pace: a word every 150 ms
            await client.write_event(SynthesizeChunk(word if i == 0 else " " + word).event())
            await asyncio.sleep(0.15)
        text_done = time.perf_counter() - started
        await client.write_event(Synthesize(text).event())  # sent by clients for old servers; ignored
        await client.write_event(SynthesizeStop().event())
        await asyncio.wait_for(reader, 60)
    kinds = [e.type for e in events]
    assert kinds[-1] == "synthesize-stopped", kinds[-3:]
    assert kinds.count("audio-start") == kinds.count("audio-stop") == 2  # one stream per sentence
    assert first_audio is not None and first_audio < text_done
    pcm, rate = pcm_of(events)
    seconds = assert_speech(pcm, rate, 3.0)
    print(
        f"\nwyoming streamed synthesis: first audio {first_audio * 1000:.0f} ms after synthesize-start, "
        f"text complete at {text_done * 1000:.0f} ms; {seconds:.2f} s of audio"
    )


# -- handle --------------------------------------------------------------------------------


async def handled(server: Wyoming, text: str, context: dict[str, str] | None = None) -> list[Event]:
    async with server.client() as client:
        await client.write_event(Transcript(text=text, context=context).event())
        return await read_until(client, "handled-stop")


async def test_transcript_handled_by_the_llm_with_history_per_conversation(
    with_llm: tuple[Wyoming, FakeChatLLM],
) -> None:
    server, llm = with_llm
    events = await handled(server, "What is the weather in Paris?", {"conversation_id": "kitchen-1"})
    kinds = [e.type for e in events]
    assert kinds[0] == "handled-start" and kinds[-2:] == ["handled", "handled-stop"]
    chunks = "".join(e.data["text"] for e in events if e.type == "handled-chunk")
    answer = Handled.from_event(events[-2])
    assert answer.text == chunks == "It is sunny in Paris. Take sunglasses."
    assert answer.context == {"conversation_id": "kitchen-1"}

    await handled(server, "And tomorrow?", {"conversation_id": "kitchen-1"})
    second = [m["content"] for m in llm.requests[-1]["body"]["messages"]]
    assert second[1:] == [
        "What is the weather in Paris?",
        "It is sunny in Paris. Take sunglasses.",
        "And tomorrow?",
    ]

    await handled(server, "Who are you?", {"conversation_id": "bedroom-2"})
    other = [m["content"] for m in llm.requests[-1]["body"]["messages"]]
    assert other[1:] == ["Who are you?"]

    events = await handled(server, "Hello?")  # no context: a new conversation, named in the reply
    assert str(Handled.from_event(events[-2]).context["conversation_id"]).startswith("hark-")


async def test_tools_run_as_on_every_other_path(with_llm: tuple[Wyoming, FakeChatLLM]) -> None:
    server, llm = with_llm
    llm.tool_call = ("current_time", '{"timezone": "Europe/Paris"}')
    try:
        events = await handled(server, "What time is it in Paris?", {"conversation_id": "tools-1"})
    finally:
        llm.tool_call = None
    answer = str(Handled.from_event(events[-2]).text)
    assert answer.startswith("Here it is:") and "(Europe/Paris)" in answer
    assert llm.requests[-1]["body"]["messages"][-1]["role"] == "tool"


async def test_a_failing_llm_gives_the_labelled_echo(with_llm: tuple[Wyoming, FakeChatLLM]) -> None:
    server, llm = with_llm
    llm.fail_status = 400
    try:
        events = await handled(server, "dim the bedroom lights", {"conversation_id": "fails-1"})
    finally:
        llm.fail_status = None
    answer = Handled.from_event(events[-2]).text
    assert answer == "Echo mode: the language model failed to answer. You said: dim the bedroom lights"


async def test_echo_mode_without_llm_says_so(echo: Wyoming) -> None:
    events = await handled(echo, "turn on the lights")
    answer = Handled.from_event(events[-2]).text
    assert answer == "Echo mode. You said: turn on the lights"


# -- bad input -----------------------------------------------------------------------------


async def expect_error(client: AsyncTcpClient, code: str) -> Error:
    event = await client.read_event()
    while event is not None and event.type in ("transcript-start", "transcript-chunk"):
        event = await client.read_event()  # an utterance had begun before it was refused
    assert event is not None and Error.is_type(event.type), event
    error = Error.from_event(event)
    assert error.code == code, error
    return error


async def still_serves(client: AsyncTcpClient) -> None:
    await client.write_event(Describe().event())
    assert (await read_until(client, "info"))[-1].type == "info"


async def test_bad_events_get_errors_and_the_connection_goes_on(echo: Wyoming) -> None:
    async with echo.client() as client:
        await client.write_event(Event("launch-rockets", {"now": True}))
        await expect_error(client, "unknown_event_type")
        await client.write_event(AudioChunk(16_000, 2, 1, bytes(3200)).event())
        await expect_error(client, "not_started")
        await client.write_event(AudioStop().event())
        await expect_error(client, "not_started")
        await client.write_event(SynthesizeChunk("hello").event())
        await expect_error(client, "not_started")
        for rate, width, channels in ((7_000, 2, 1), (10**9, 2, 1), (16_000, 1, 1), (16_000, 2, 6)):
            await client.write_event(AudioStart(rate, width, channels).event())
            await expect_error(client, "unsupported_audio_format")
        await client.write_event(Event("audio-start", {"rate": "fast", "width": 2, "channels": 1}))
        await expect_error(client, "invalid_audio")
        await client.write_event(Event("synthesize", {"text": 42}))
        await expect_error(client, "invalid_value")
        await client.write_event(Synthesize("x" * 5000).event())
        await expect_error(client, "max_length_reached")
        await client.write_event(Event("synthesize", {"text": "hi", "voice": {"name": "nobody"}}))
        await expect_error(client, "invalid_value")
        # An odd-length payload and a format change inside an utterance: refused, the rest dropped.
        await client.write_event(AudioStart(16_000, 2, 1).event())
        await client.write_event(AudioChunk(16_000, 2, 1, bytes(3201)).event())
        await expect_error(client, "invalid_audio")
        await client.write_event(AudioChunk(16_000, 2, 1, bytes(3200)).event())
        await client.write_event(AudioStop().event())
        await still_serves(client)


async def test_a_flood_of_bad_events_leaves_a_healthy_connection_served(echo: Wyoming) -> None:
    bad = [
        Event("launch-rockets"),
        AudioChunk(16_000, 2, 1, bytes(320)).event(),
        AudioStart(7_000, 2, 1).event(),
        Event("synthesize", {"text": ["not", "text"]}),
        SynthesizeStop().event(),
    ]

    async def flood() -> int:
        errors = 0
        async with echo.client() as client:
            for i in range(100):
                await client.write_event(bad[i % len(bad)])
                event = await client.read_event()
                errors += event is not None and event.type == "error"
        return errors

    rate = 16_000
    pcm = speak(QUESTION, rate=rate)
    started = time.perf_counter()
    heard, *errors = await asyncio.gather(transcribe(echo, pcm, rate), *(flood() for _ in range(4)))
    took = time.perf_counter() - started
    print(
        f"\n400 bad events over 4 connections: {sum(errors)} error events; healthy transcription {took:.2f} s"
    )
    assert errors == [100] * 4
    assert "weather" in heard.lower()


async def test_audio_past_the_limit_is_refused(echo: Wyoming) -> None:
    rate = 16_000
    async with echo.client() as client:
        await client.write_event(AudioStart(rate, 2, 1).event())
        await send_audio(client, bytes(rate * 2 * 9), rate, chunk_ms=500)  # 9 s > max_audio_s 8
        await expect_error(client, "max_length_reached")
        await client.write_event(AudioStop().event())
        await still_serves(client)


async def raw_connection(server: Wyoming) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.wyoming_port)


async def test_oversized_and_malformed_events_close_the_connection(echo: Wyoming) -> None:
    cases = {
        "payload": json.dumps({"type": "audio-chunk", "payload_length": 10**12}).encode() + b"\n",
        "data": json.dumps({"type": "synthesize", "data_length": 300 * 1024}).encode() + b"\n",
        "not json": b"this is not an event\n",
        "no type": json.dumps({"data": {}}).encode() + b"\n",
        "long line": b"{" + b" " * (300 * 1024) + b"\n",
    }
    for name, header in cases.items():
        reader, writer = await raw_connection(echo)
        started = time.perf_counter()
        writer.write(header)
        await writer.drain()
        event = await asyncio.wait_for(async_read_event(reader), 5)
        assert event is not None and event.type == "error", name
        assert event.data["code"] in ("event_too_large", "invalid_event"), (name, event.data)
        assert await asyncio.wait_for(reader.read(), 5) == b"", f"{name}: still open"
        print(f"\n{name}: {event.data['code']} and closed in {(time.perf_counter() - started) * 1000:.0f} ms")
        writer.close()
    async with echo.client() as client:
        await still_serves(client)


async def sessions_active(server: HarkProcess) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(server.base_url + "/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith('hark_sessions_active{transport="wyoming"}'))
    return float(line.split()[-1])


async def test_vanishing_clients_free_their_connections(echo: Wyoming) -> None:
    # Mid-synthesis, mid-utterance and mid-text-stream: each client just closes its socket.
    long_text = " ".join(f"This is sentence {n} of a long answer." for n in range(40))
    for events in (
        [Synthesize(long_text).event()],
        [AudioStart(16_000, 2, 1).event(), AudioChunk(16_000, 2, 1, speak(QUESTION, rate=16_000)).event()],
        [SynthesizeStart().event(), SynthesizeChunk(long_text).event()],
    ):
        _, writer = await raw_connection(echo)
        for event in events:
            await async_write_event(event, writer)
        await asyncio.sleep(0.3)
        writer.close()
    deadline = time.monotonic() + 20
    while (active := await sessions_active(echo)) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert active == 0
    async with echo.client() as client:
        await still_serves(client)


async def test_a_client_that_stops_reading_is_closed(echo: Wyoming) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", echo.wyoming_port))
    sock.setblocking(False)
    _, writer = await asyncio.open_connection(sock=sock)
    text = " ".join(f"This is sentence number {n} of an answer nobody listens to." for n in range(25))
    await async_write_event(Synthesize(text).event(), writer)
    started = time.monotonic()
    await asyncio.sleep(0.5)
    assert await sessions_active(echo) == 1
    while (active := await sessions_active(echo)) > 0 and time.monotonic() - started < 60:
        await asyncio.sleep(0.5)
    print(f"\nclient not reading: closed after {time.monotonic() - started:.1f} s (write timeout 6 s)")
    assert active == 0
    writer.close()


async def test_idle_connections_and_the_connection_cap(echo: Wyoming) -> None:
    idle = echo.client()
    await idle.connect()
    started = time.perf_counter()
    others = [echo.client() for _ in range(5)]
    for client in others:
        await client.connect()
    refused = echo.client()
    await refused.connect()
    await expect_error(refused, "session_limit")
    assert await refused.read_event() is None
    await refused.disconnect()
    for client in others:
        await client.disconnect()
    await expect_error(idle, "idle_timeout")
    assert await idle.read_event() is None
    print(f"\nidle connection closed after {time.perf_counter() - started:.1f} s (limit 6 s)")
    await idle.disconnect()


async def test_no_transcripts_in_logs_or_metrics(echo: Wyoming) -> None:
    await handled(echo, "my secret pin is four four two")
    assert echo.log_path is not None
    log = echo.log_path.read_text()
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(echo.base_url + "/metrics")).text
    for text in ("secret pin", "weather like in Paris", "kitchen lights"):
        assert text not in log and text.lower() not in metrics.lower()
    assert "wyoming listening" in log


def test_beyond_loopback_without_an_allow_list_hark_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARK_")}
    env.update({"HARK_WYOMING_ENABLED": "true", "HARK_WYOMING_HOST": "0.0.0.0"})
    result = subprocess.run(
        [sys.executable, "-m", "hark", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "wyoming.allowed_clients" in result.stderr


async def test_shutdown_finishes_the_reply_in_progress_then_closes(echo: Wyoming) -> None:
    """Last in this module: it stops the server."""
    assert echo.process is not None
    text = "The first sentence is short. The second one takes a little longer to say. And a third."
    async with echo.client() as client:
        await client.write_event(Synthesize(text).event())
        first = await client.read_event()
        assert first is not None and first.type == "audio-start"
        started = time.perf_counter()
        echo.process.send_signal(signal.SIGTERM)
        events = await read_until(client, "audio-stop")
        assert await client.read_event() is None
    code = await asyncio.to_thread(echo.process.wait, 30)
    pcm, rate = pcm_of(events)
    print(
        f"\nSIGTERM mid-reply: {len(pcm) / 2 / rate:.2f} s of audio still sent, exit {code} "
        f"after {time.perf_counter() - started:.1f} s"
    )
    assert code == 0
    assert_speech(pcm, rate, 3.0)
