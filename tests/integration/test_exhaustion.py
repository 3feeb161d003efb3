"""No cheap request exhausts the server (issue 12), on a real hark process with two API keys,
debug logging, short slow-client bounds and two running jobs per key:

- a few kilobytes of FLAC holding an hour of silence is refused at once with bounded memory
  (RSS of the server and its worker processes measured);
- bodies over a route's limit are refused while they are read: a declared Content-Length before
  a byte of the body is read, a streamed one shortly after the limit;
- one key's flood of long speech requests leaves another key served;
- silent, slow-header and idle HTTP connections and idle WebSockets on every endpoint are
  closed within their bounds; a meeting stream sent faster than real time is held back;
- debug logs carry neither a key presented as a subprotocol nor what was said.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from tests.integration.test_bad_input import recv_until
from tests.load import rss_kib
from tests.servers import HarkProcess
from tests.speech import silence, speak, write_wav
from tests.unit.test_hardening import silent_flac

pytestmark = pytest.mark.slow

KEY_A = "flood-key-a-0c8e41d2"
KEY_B = "quiet-key-b-77a9f3e5"
BOUND_S = 2.0
"""Header timeout, keep-alive and WebSocket idle timeout of the server under test."""
SLACK_S = 1.5


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HarkProcess]:
    directory = tmp_path_factory.mktemp("exhaustion")
    (directory / "tmp").mkdir()
    env = {
        "HARK_SECURITY_API_KEYS": json.dumps([KEY_A, KEY_B]),
        "HARK_SECURITY_IDLE_TIMEOUT_S": str(BOUND_S),
        "HARK_SERVER_HEADER_TIMEOUT_S": str(BOUND_S),
        "HARK_SERVER_KEEP_ALIVE_S": str(int(BOUND_S)),
        "HARK_SERVER_BODY_TIMEOUT_S": str(BOUND_S),
        "HARK_SECURITY_MAX_JOBS_PER_KEY": "2",
        "HARK_SERVER_LOG_LEVEL": "debug",
        "HARK_MEETINGS_DATA_DIR": str(directory / "meetings"),
        "TMPDIR": str(directory / "tmp"),
    }
    with HarkProcess(env=env, log_path=directory / "server.log") as server:
        yield server


def family_pids(pid: int) -> list[int]:
    """The process and its descendants (the worker pool)."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        for task in os.listdir(f"/proc/{current}/task"):
            try:
                with open(f"/proc/{current}/task/{task}/children") as children:
                    queue += [int(p) for p in children.read().split()]
            except OSError:
                continue
    return pids


def family_rss_mib(pid: int) -> float:
    total = 0
    for member in family_pids(pid):
        try:
            total += rss_kib(member)
        except (OSError, RuntimeError):
            continue
    return total / 1024


class PeakRSS:
    """Samples the RSS of the server and its workers every 20 ms while in the ``with``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = family_rss_mib(pid)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, family_rss_mib(self.pid))

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> float:
        return self.peak - self.before


# -- 1. decompression bomb ---------------------------------------------------------------------


@pytest.mark.parametrize("hide_length", [False, True], ids=["declared", "hidden-length"])
async def test_an_hour_of_silence_in_a_tiny_file_is_refused_quickly(
    limited: HarkProcess, hide_length: bool
) -> None:
    bomb = await asyncio.to_thread(silent_flac, 3600, hide_length=hide_length)
    assert limited.process is not None
    async with httpx.AsyncClient(base_url=limited.base_url, timeout=60) as client:
        with PeakRSS(limited.process.pid) as rss:
            started = time.monotonic()
            response = await client.post(
                "/v1/audio/transcriptions",
                headers=auth(KEY_A),
                files={"file": ("silence.flac", bomb, "audio/flac")},
                data={"model": "whisper-1"},
            )
            took = time.monotonic() - started
        kind = "length hidden" if hide_length else "length declared"
        print(
            f"\n{len(bomb) / 1024:.1f} KiB FLAC, 1 h of silence ({kind}): "
            f"{response.status_code} in {took:.2f} s; RSS server+workers {rss.before:.0f} MiB, "
            f"peak +{rss.growth:.0f} MiB"
        )
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "audio_too_long"
        assert took < (1.0 if not hide_length else 5.0)
        assert rss.growth < 200
        # The server is unharmed: real speech is still transcribed.
        wav = io.BytesIO()
        write_wav(wav, speak("The server is still listening."), 24_000)
        ok = await client.post(
            "/v1/audio/transcriptions",
            headers=auth(KEY_A),
            files={"file": ("speech.wav", wav.getvalue(), "audio/wav")},
            data={"model": "whisper-1"},
        )
        assert ok.status_code == 200 and "listening" in ok.json()["text"].lower()


# -- 5. request bodies -------------------------------------------------------------------------


def _raw(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _read_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Status line, headers and (by Content-Length) the body."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _temp_files(directory: Path) -> dict[str, int]:
    return {str(f): f.stat().st_size for f in directory.rglob("*") if f.is_file()}


def _declared(port: int, path: str, length: int, content_type: str) -> tuple[bytes, float]:
    """Headers declaring ``length`` bytes of body, and no body: the answer and its time."""
    with _raw(port) as sock:
        started = time.monotonic()
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY_A}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
            ).encode()
        )
        return _read_response(sock), time.monotonic() - started


def _streamed(port: int, path: str, total: int, content_type: str, prefix: bytes = b"") -> tuple[bytes, int]:
    """A chunked body of up to ``total`` bytes, sent until the server answers: the answer and
    the bytes sent before it came."""
    chunk = b"a" * (256 * 1024)
    sent = 0
    with _raw(port) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY_A}\r\n"
                f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        if prefix:
            sock.sendall(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
            sent += len(prefix)
        sock.setblocking(False)
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                break
            if writable:
                try:
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
        sock.setblocking(True)
        try:
            return _read_response(sock), sent
        except ConnectionResetError:
            return b"", sent


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def test_bodies_over_the_limit_are_refused_while_read(limited: HarkProcess, tmp_path: Path) -> None:
    assert limited.process is not None
    tmpdir = Path(limited.env["TMPDIR"])
    temp_before = _temp_files(tmpdir)
    with PeakRSS(limited.process.pid) as rss:
        json_declared, json_s = _declared(
            limited.port, "/v1/realtime/client_secrets", 256 * 1024 * 1024, "application/json"
        )
        upload_declared, upload_s = _declared(
            limited.port, "/v1/audio/transcriptions", 1024 * 1024 * 1024, "multipart/form-data; boundary=xyz"
        )
        json_streamed, json_sent = _streamed(
            limited.port, "/v1/realtime/client_secrets", 64 * 1024 * 1024, "application/json"
        )
        head = (
            b'--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.flac"\r\n'
            b"Content-Type: audio/flac\r\n\r\n"
        )
        upload_streamed, upload_sent = _streamed(
            limited.port,
            "/v1/audio/transcriptions",
            200 * 1024 * 1024,
            "multipart/form-data; boundary=xyz",
            head,
        )
    leftover = sum(size for name, size in _temp_files(tmpdir).items() if name not in temp_before)
    print(
        f"\n256 MiB JSON declared: {_status(json_declared)} in {json_s * 1000:.0f} ms; "
        f"1 GiB upload declared: {_status(upload_declared)} in {upload_s * 1000:.0f} ms; "
        f"streamed JSON: {_status(json_streamed)} after {json_sent / 2**20:.1f} MiB sent; "
        f"streamed upload: {_status(upload_streamed)} after {upload_sent / 2**20:.1f} MiB sent; "
        f"RSS server+workers peak +{rss.growth:.0f} MiB; bytes left in TMPDIR {leftover}"
    )
    for response in (json_declared, upload_declared, json_streamed, upload_streamed):
        assert _status(response) == 413, response[:300]
        assert b"request_too_large" in response
    assert json_s < 2 and upload_s < 2
    # Refused within the limit plus what the sockets buffer, never the whole body.
    assert json_sent < 16 * 1024 * 1024
    assert upload_sent < 25 * 1024 * 1024 + 24 * 1024 * 1024
    assert rss.growth < 150
    assert leftover == 0
    # A small body still works.
    assert (
        httpx.post(limited.base_url + "/v1/realtime/client_secrets", headers=auth(KEY_A), json={}).status_code
        == 200
    )


# -- 6. one key's flood ------------------------------------------------------------------------


async def test_one_keys_speech_flood_leaves_another_key_served(limited: HarkProcess) -> None:
    text = ("This sentence is long enough to keep a speech engine busy for a while. " * 60)[:4096]
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=limited.base_url, timeout=120) as client:
        streams: list[httpx.Response] = []

        async def flood_one() -> None:
            request = client.build_request(
                "POST",
                "/v1/audio/speech",
                headers=auth(KEY_A),
                json={"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"},
            )
            response = await client.send(request, stream=True)
            statuses.append(response.status_code)
            streams.append(response)

        try:
            started = time.monotonic()
            await asyncio.gather(*(flood_one() for _ in range(20)))
            flood_s = time.monotonic() - started
            started = time.monotonic()
            other = await client.post(
                "/v1/audio/speech",
                headers=auth(KEY_B),
                json={"model": "tts-1", "voice": "alloy", "input": "Hello there.", "response_format": "pcm"},
            )
            other_s = time.monotonic() - started
        finally:
            for response in streams:
                await response.aclose()
    counts = {status: statuses.count(status) for status in sorted(set(statuses))}
    print(
        f"\nkey A: 20 x 4096 characters in {flood_s:.2f} s -> {counts}; "
        f"key B: 12 characters -> {other.status_code} in {other_s:.2f} s"
    )
    assert other.status_code == 200 and len(other.content) > 0
    assert counts.get(200) == 2 and counts.get(429) == 18


# -- 7. slow clients ---------------------------------------------------------------------------


def _closed_after(
    sock: socket.socket, dribble: bytes = b"", every: float = 0.5, limit: float = 15.0
) -> float:
    """Seconds until the server closes ``sock``, sending ``dribble`` a byte at a time meanwhile."""
    started = time.monotonic()
    sock.setblocking(False)
    position = 0
    while time.monotonic() - started < limit:
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            try:
                if sock.recv(65536) == b"":
                    return time.monotonic() - started
            except ConnectionResetError:
                return time.monotonic() - started
        elif position < len(dribble):
            try:
                sock.send(dribble[position : position + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
            position += 1
    return float("inf")


def test_silent_and_slow_header_connections_are_closed(limited: HarkProcess) -> None:
    with _raw(limited.port) as silent:
        silent_s = _closed_after(silent)
    with _raw(limited.port) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\n")
        slow_s = _closed_after(slow, b"X-Padding: " + b"a" * 100)
    with _raw(limited.port) as slow_body:
        slow_body.sendall(
            f"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY_A}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        started = time.monotonic()
        answer = _read_response(slow_body, timeout=15)
        slow_body_s = time.monotonic() - started
        assert _status(answer) == 408 and b"request_timeout" in answer, answer[:300]
    with _raw(limited.port) as keep_alive:
        keep_alive.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(keep_alive).startswith(b"HTTP/1.1 200")
        keep_alive_s = _closed_after(keep_alive)
    print(
        f"\nbound {BOUND_S:.0f} s: silent connection closed after {silent_s:.2f} s, slow headers after "
        f"{slow_s:.2f} s, idle keep-alive after {keep_alive_s:.2f} s, stalled body answered 408 after "
        f"{slow_body_s:.2f} s"
    )
    assert slow_body_s <= BOUND_S + SLACK_S
    assert silent_s <= BOUND_S + SLACK_S
    assert slow_s <= BOUND_S + SLACK_S
    assert keep_alive_s <= 2 * BOUND_S + SLACK_S


async def test_idle_websockets_are_closed_on_every_endpoint(limited: HarkProcess) -> None:
    results: dict[str, tuple[float, int | None]] = {}
    for path in ("/v1/tts/sessions", "/v1/meetings/stream", "/v1/realtime"):
        url = f"ws://127.0.0.1:{limited.port}{path}"
        async with websockets.connect(url, additional_headers=auth(KEY_A)) as ws:
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 15)
            results[path] = (time.monotonic() - started, ws.close_code)
    print(
        "\nidle WebSockets closed: "
        + ", ".join(f"{p} after {s:.2f} s ({c})" for p, (s, c) in results.items())
    )
    for seconds, code in results.values():
        assert seconds <= BOUND_S + SLACK_S
        assert code == 1000


async def test_a_meeting_stream_is_held_to_its_audio_rate(limited: HarkProcess) -> None:
    rate, seconds = 16_000, 12
    frame = silence(100, rate)
    url = f"ws://127.0.0.1:{limited.port}/v1/meetings/stream"
    async with websockets.connect(url, additional_headers=auth(KEY_A)) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": rate}))
        await recv_until(ws, "started")
        started = time.monotonic()
        for _ in range(seconds * 10):
            await ws.send(frame)
        await ws.send(json.dumps({"type": "stop"}))
        stopped = await recv_until(ws, "stopped", timeout=60)
        took = time.monotonic() - started
    print(
        f"\n{seconds} s of audio sent as fast as possible: taken over {took:.2f} s (2x real time, 2 s burst)"
    )
    assert stopped["duration_s"] == pytest.approx(seconds, abs=0.2)
    assert took >= (seconds - 2.0) / 2.0 - 0.5


# -- 8. debug logs -----------------------------------------------------------------------------


async def test_debug_logs_carry_no_keys_or_what_was_said(limited: HarkProcess) -> None:
    protocols = [Subprotocol("realtime"), Subprotocol(f"openai-insecure-api-key.{KEY_B}")]
    async with websockets.connect(limited.ws_url, subprotocols=protocols) as ws:
        await recv_until(ws, "session.created")
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "The vault code is tangerine nine."}],
        }
        await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
        await recv_until(ws, "conversation.item.done")
    url = f"ws://127.0.0.1:{limited.port}/v1/tts/sessions"
    async with websockets.connect(url, additional_headers=auth(KEY_A)) as ws:
        await recv_until(ws, "session.created")
        await ws.send(json.dumps({"type": "input_text.append", "text": "Tangerine is the password."}))
        await recv_until(ws, "segment.done", timeout=30)
    await asyncio.sleep(0.5)
    assert limited.log_path is not None
    log = limited.log_path.read_text()
    debug_lines = sum(" DEBUG " in line for line in log.splitlines())
    print(f"\ndebug log: {len(log.splitlines())} lines, {debug_lines} at DEBUG")
    assert debug_lines > 0
    for secret in (KEY_A, KEY_B, "tangerine", "Tangerine", "vault code"):
        assert secret not in log, secret
    # The handshake and frames were logged, in their redacted form.
    assert "openai-insecure-api-key.[redacted]" in log and "authorization: [redacted]" in log.lower()
    assert "< TEXT [" in log
