"""The raw-PCM wire of /v1/realtime: binary frames in are input audio, and with ``audio=binary``
reply audio comes back as binary frames. Real server, real models, a plain websockets client."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from hark.bench.fakes import PLUGIN_ENV
from hark.transports.realtime import MAX_APPEND_BYTES
from tests.servers import HarkProcess
from tests.speech import silence, speak

pytestmark = pytest.mark.slow

RATE = 24_000
FRAME_BYTES = RATE * 2 * 40 // 1000  # 40 ms
SENTENCE = "Please call my mother tomorrow morning."


@dataclass
class Wire:
    """What came back on one connection, in order: JSON events and binary frames."""

    ws: Any
    messages: list[dict[str, Any] | bytes] = field(default_factory=list)

    async def until(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.recv()
                message = raw if isinstance(raw, bytes) else json.loads(raw)
                self.messages.append(message)
                if isinstance(message, dict) and message["type"] == kind:
                    return message

    def types(self) -> list[str]:
        return ["<pcm>" if isinstance(m, bytes) else m["type"] for m in self.messages]


async def send_pcm(ws: Any, pcm: bytes) -> None:
    """Binary frames of 40 ms at twice real time (the server's default speed limit)."""
    for offset in range(0, len(pcm), FRAME_BYTES):
        await ws.send(pcm[offset : offset + FRAME_BYTES])
        await asyncio.sleep(0.02)


def spoken() -> bytes:
    return silence(300) + speak(SENTENCE) + silence(1200)


def reply_audio(wire: Wire) -> tuple[bytes, list[str]]:
    """The binary frames between response.created and response.output_audio.done, and the
    types of everything else received after that reply began."""
    types = wire.types()
    start, end = types.index("response.created"), types.index("response.output_audio.done")
    pcm = b"".join(m for m in wire.messages[start:end] if isinstance(m, bytes))
    return pcm, [t for t in types[start:] if t != "<pcm>"]


async def test_binary_in_binary_out_answers_a_spoken_turn(hark_server: HarkProcess) -> None:
    async with websockets.connect(hark_server.ws_url + "&audio=binary", max_size=None) as ws:
        wire = Wire(ws)
        await wire.until("session.created")
        await send_pcm(ws, spoken())
        final = await wire.until("conversation.item.input_audio_transcription.completed")
        assert "mother" in final["transcript"].lower()
        done = await wire.until("response.done")
        assert done["response"]["status"] == "completed", done
    pcm, events = reply_audio(wire)
    assert "response.output_audio.delta" not in wire.types()
    # Every other event of the reply is unchanged, in the usual order.
    assert events.index("response.output_audio_transcript.delta") < events.index("response.output_audio.done")
    assert events[-1] == "response.done"
    # Raw PCM16 at 24 kHz: whole samples, seconds of audible speech.
    assert len(pcm) % 2 == 0
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    assert len(samples) / RATE > 1.0
    assert float(np.sqrt(np.mean(samples**2))) > 0.01
    assert not any(isinstance(m, bytes) for m in wire.messages[wire.messages.index(done) :])


async def test_binary_in_json_out_by_default(hark_server: HarkProcess) -> None:
    async with websockets.connect(hark_server.ws_url, max_size=None) as ws:
        wire = Wire(ws)
        await wire.until("session.created")
        await send_pcm(ws, spoken())
        final = await wire.until("conversation.item.input_audio_transcription.completed")
        assert "mother" in final["transcript"].lower()
        await wire.until("response.done")
    assert "<pcm>" not in wire.types()
    assert "response.output_audio.delta" in wire.types()


async def test_odd_binary_frame_is_refused_and_nothing_accepted_is_lost(hark_server: HarkProcess) -> None:
    """An odd-length frame in the middle of speech gets an error; the frames before and after it
    still make one turn with the whole sentence."""
    pcm = spoken()
    middle = len(pcm) // 2 // FRAME_BYTES * FRAME_BYTES
    async with websockets.connect(hark_server.ws_url + "&audio=binary", max_size=None) as ws:
        wire = Wire(ws)
        await wire.until("session.created")
        await send_pcm(ws, pcm[:middle])
        await ws.send(b"\x01\x02\x03")
        error = (await wire.until("error"))["error"]
        assert error["code"] == "invalid_value"
        assert "3 bytes" in error["message"] and "even" in error["message"]
        await send_pcm(ws, pcm[middle:])
        final = await wire.until("conversation.item.input_audio_transcription.completed")
        assert "call my mother tomorrow" in final["transcript"].lower()
        done = await wire.until("response.done")
        assert done["response"]["status"] == "completed"


async def test_oversized_binary_frame_gets_an_error_and_the_session_goes_on(hark_server: HarkProcess) -> None:
    async with websockets.connect(hark_server.ws_url + "&audio=binary", max_size=None) as ws:
        wire = Wire(ws)
        await wire.until("session.created")
        await ws.send(bytes(MAX_APPEND_BYTES + 2))  # under the 16 MiB frame limit, over the append limit
        error = (await wire.until("error"))["error"]
        assert error["code"] == "invalid_value"
        assert f"exceeds {MAX_APPEND_BYTES} bytes" in error["message"]
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        await wire.until("session.updated")


async def test_frame_over_the_transport_limit_closes_1009_binary_or_text(hark_server: HarkProcess) -> None:
    too_big = 17 * 1024 * 1024  # security.max_frame_bytes is 16 MiB
    for opcode in (0x2, 0x1):  # binary, text
        async with websockets.connect(hark_server.ws_url + "&audio=binary", max_size=None) as ws:
            await Wire(ws).until("session.created")
            # Only the frame's header, announcing 17 MiB: the server refuses it from the length
            # alone. (Writing the whole payload uncompressed races the server's close: the
            # connection is reset under the unread megabytes and the close frame can be lost.)
            header = bytes([0x80 | opcode, 0x80 | 127]) + too_big.to_bytes(8, "big") + bytes(4)
            ws.transport.write(header)
            with pytest.raises(websockets.ConnectionClosed) as info:
                while True:
                    await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        async with websockets.connect(hark_server.ws_url + "&audio=binary") as ws:
            await Wire(ws).until("session.created")  # the server lives on


async def test_unknown_audio_wire_is_an_error_and_json_is_used(hark_server: HarkProcess) -> None:
    async with websockets.connect(hark_server.ws_url + "&audio=opus", max_size=None) as ws:
        wire = Wire(ws)
        await wire.until("session.created")
        error = (await wire.until("error"))["error"]
        assert error["param"] == "audio" and "audio=binary" in error["message"]
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await ws.send(json.dumps({"type": "response.create"}))
        await wire.until("response.done")
    assert "response.output_audio.delta" in wire.types() and "<pcm>" not in wire.types()


# -- a client that stops reading binary audio ---------------------------------------------------

SCRIPTED_ECHO = {
    **PLUGIN_ENV,
    "HARK_STT_PROVIDERS": '[{"kind": "scripted"}]',
    "HARK_TTS_PROVIDERS": '[{"kind": "scripted"}]',
    "HARK_WORKERS_ENABLED": "false",
}


async def test_slow_binary_reader_gets_audio_dropped_or_closed(tmp_path: Path) -> None:
    """The outbound budget holds for binary frames: a client that reads nothing for 10 s of a
    long reply gets part of the audio dropped (or the session closed with 1008), and another
    session on the server goes on answering."""
    stall_s = 10.0
    text = "The quick brown fox jumps over the lazy dog again and again. " * 60  # ~36 s of audio
    with HarkProcess(env=SCRIPTED_ECHO, log_path=tmp_path / "server.log") as hark:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", hark.port))
        url = hark.ws_url + "&audio=binary"
        slow = await websockets.connect(url, sock=sock, max_queue=1, max_size=None, compression=None)
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await slow.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await slow.send(json.dumps({"type": "response.create"}))
        started = time.monotonic()
        async with websockets.connect(url, max_size=None) as healthy:
            wire = Wire(healthy)
            await wire.until("session.created")
            await asyncio.sleep(stall_s)
            hello = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
            await healthy.send(json.dumps({"type": "conversation.item.create", "item": hello}))
            await healthy.send(json.dumps({"type": "response.create"}))
            assert (await wire.until("response.done"))["response"]["status"] == "completed"
        audio, close_code = 0, None
        try:
            async with asyncio.timeout(2.0):
                while True:
                    message = await slow.recv()
                    if isinstance(message, bytes):
                        audio += len(message)
        except websockets.ConnectionClosed as exc:
            close_code = exc.rcvd.code if exc.rcvd is not None else None
        except TimeoutError:
            pass
        produced_s = time.monotonic() - started + 0.6  # paced at real time, 600 ms ahead
        slow.transport.abort()
        assert "Traceback" not in (tmp_path / "server.log").read_text(errors="replace")
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(hark.base_url + "/metrics", timeout=10)).text
    # The server's own count of reply audio it dropped for this reader (received = produced
    # minus dropped minus what was still on its way, so the client alone cannot tell ~1 s apart).
    dropped = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('hark_outbound_audio_dropped_bytes_total{transport="realtime"}')
    )
    print(
        f"\n  slow reader: {audio / 2 / RATE:.1f} s received of ~{produced_s:.1f} s,"
        f" {dropped / 2 / RATE:.1f} s dropped"
    )
    assert close_code == 1008 or dropped > 0, (close_code, audio, produced_s)
    assert audio + dropped <= produced_s * 2 * RATE  # nothing was sent twice


# -- permessage-deflate offered by the client (browsers and the OpenAI SDKs offer it) -------------


@pytest.mark.parametrize("enabled", [False, True], ids=["compression-off", "compression-on"])
async def test_a_client_offering_deflate_connects_and_talks_either_way(tmp_path: Path, enabled: bool) -> None:
    env = {**SCRIPTED_ECHO, "HARK_SERVER_WEBSOCKET_COMPRESSION": str(enabled).lower()}
    with HarkProcess(env=env, log_path=tmp_path / "server.log") as hark:
        url = hark.ws_url + "&audio=binary"
        async with websockets.connect(url, max_size=None, compression="deflate") as ws:
            # Declined, the offer leaves the connection uncompressed; accepted, deflated.
            assert bool(ws.protocol.extensions) is enabled
            wire = Wire(ws)
            await wire.until("session.created")
            await send_pcm(ws, spoken())
            done = await wire.until("response.done")
            assert done["response"]["status"] == "completed", done
        pcm, _ = reply_audio(wire)
        assert len(pcm) > 0 and len(pcm) % 2 == 0
