"""HandshakeGuard in front of a tiny app, served by uvicorn over loopback: origins, credentials,
the session cap, REST keys and rate limits, and frame size limits (plain and compressed).

The real ``create_app`` loads models, so the guard wraps a small Starlette app here: a WebSocket
echo at /v1/realtime (and /v1/tts/sessions) and HTTP routes at /v1/models and /health.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import statistics
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
import websockets
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from hark.config import Settings
from hark.security import (
    HandshakeGuard,
    Security,
    TokenIssuer,
    client_secrets_router,
    install_denial_log_filter,
    principal_of,
)
from hark.security.access import API_KEY_ACCESS, declare, public, session_token
from tests.servers import free_port

KEY = "sk-hark-integration-key-1"
SECRET = "t" * 48
FRAME_LIMIT = 1024 * 1024


class TinyApp:
    """Counts every call that reaches it: refused connections must never get here."""

    def __init__(self) -> None:
        self.calls = 0
        self.first_messages: list[str] = []
        self.principals: list[Any] = []
        self.subprotocols: list[list[str]] = []
        self.headers: list[dict[str, str]] = []

    async def echo(self, websocket: WebSocket) -> None:
        self.calls += 1
        self.principals.append(principal_of(websocket.scope))
        offered = websocket.scope.get("subprotocols") or []
        self.subprotocols.append(list(offered))
        self.headers.append(dict(websocket.headers))
        await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
        first = True
        try:
            while True:
                text = await websocket.receive_text()
                if first:
                    self.first_messages.append(text)
                    first = False
                await websocket.send_text(text)
        except WebSocketDisconnect:
            pass

    async def models(self, request: Request) -> JSONResponse:
        self.calls += 1
        return JSONResponse({"object": "list", "data": [{"id": "hark", "object": "model"}]})

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                declare(WebSocketRoute("/v1/realtime", self.echo), session_token("realtime")),
                declare(WebSocketRoute("/v1/tts/sessions", self.echo), session_token("tts")),
                declare(Route("/v1/models", self.models), API_KEY_ACCESS),
                declare(Route("/health", self.health), public("probed without credentials")),
            ]
        )


class Served:
    def __init__(self, guard: HandshakeGuard, inner: TinyApp, port: int) -> None:
        self.guard, self.inner, self.port = guard, inner, port

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def mint(self, scope: str = "realtime:sess_test", **kwargs: Any) -> str:
        return self.guard.security.tokens.mint(scope, **kwargs).value


@contextmanager
def serve(*, auth_timeout_s: float = 0.5, **security: Any) -> Iterator[Served]:
    security = {"token_secret": SECRET, "rate_limit_per_minute": 100_000, **security}
    settings = Settings(security=security)
    inner = TinyApp()
    app = inner.app()
    guard = HandshakeGuard(app, settings, routes=app.routes, auth_timeout_s=auth_timeout_s)
    port = free_port()
    config = uvicorn.Config(
        guard,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_max_size=settings.security.max_frame_bytes,
        ws_ping_interval=settings.security.ping_interval_s,
        ws_ping_timeout=settings.security.ping_timeout_s,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield Served(guard, inner, port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def attempt(url: str, **kwargs: Any) -> tuple[int | str, float, Any]:
    """Open and, when upgraded, echo one message. (HTTP status, or close code as 'close N'), seconds."""
    started = time.perf_counter()
    try:
        async with websockets.connect(url, open_timeout=5, **kwargs) as ws:
            await ws.send("ping")
            async with asyncio.timeout(2):
                reply = await ws.recv()
            return 101, time.perf_counter() - started, reply
    except InvalidStatus as exc:
        return exc.response.status_code, time.perf_counter() - started, exc.response.body
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else 1006
        return f"close {code}", time.perf_counter() - started, exc.rcvd.reason if exc.rcvd else ""


# -- origins --------------------------------------------------------------------------------


async def test_origin_matrix() -> None:
    allowed = "https://app.example.com"
    rows = []
    with serve(api_keys=[KEY], allowed_origins=[allowed]) as s:
        auth = {"Authorization": f"Bearer {KEY}"}
        for label, origin, expected in [
            ("allowed", allowed, 101),
            ("other", "https://evil.example", 403),
            ("scheme differs", "http://app.example.com", 403),
            ("null", "null", 403),
            ("none (not a browser)", None, 101),
        ]:
            status, _, body = await attempt(s.ws, origin=origin, additional_headers=auth)
            rows.append((label, status))
            assert status == expected, (label, status, body)
            if status == 403:
                assert b"origin_not_allowed" in body
        assert s.inner.calls == 2
    with serve(api_keys=[KEY]) as s:  # no allow-list: the page's own host only
        own = f"http://127.0.0.1:{s.port}"
        for label, origin, expected in [
            ("same host", own, 101),
            ("other port", f"http://127.0.0.1:{s.port + 1}", 403),
            ("other host", "http://localhost.evil.example", 403),
        ]:
            status, _, _ = await attempt(
                s.ws, origin=origin, additional_headers={"Authorization": f"Bearer {KEY}"}
            )
            rows.append((f"same-host mode, {label}", status))
            assert status == expected, (label, status)
    with serve() as s:  # auth off (loopback): Origin is still checked
        status, _, _ = await attempt(s.ws, origin="https://evil.example")
        rows.append(("auth off, other origin", status))
        assert status == 403 and s.inner.calls == 0
    print("origin matrix: " + "; ".join(f"{label} → {status}" for label, status in rows))


# -- credentials ----------------------------------------------------------------------------


def _none_token() -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    claims = f'{{"iss":"hark","sub":"realtime:sess_x","jti":"n1","iat":{now},"nbf":{now},"exp":{now + 60}}}'
    header = b64(b'{"alg":"none","typ":"JWT"}')
    return f"{header}.{b64(claims.encode())}."


async def test_auth_matrix_refuses_before_the_app_runs() -> None:
    with serve(api_keys=[KEY]) as s:
        tokens = s.guard.security.tokens
        past = TokenIssuer(SECRET, clock=lambda: time.time() - 3600)
        future = TokenIssuer(SECRET, clock=lambda: time.time() + 3600)
        wrong = TokenIssuer("w" * 48)
        reused = s.mint()
        first, _, _ = await attempt(s.ws, subprotocols=["realtime", f"openai-insecure-api-key.{reused}"])
        assert first == 101 and s.inner.calls == 1
        now = int(time.time())
        hs512 = jwt.encode(
            {"iss": "hark", "sub": "realtime:s", "jti": "h", "iat": now, "nbf": now, "exp": now + 60},
            SECRET * 2,
            algorithm="HS512",
        )
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("missing", {}, "missing_credentials"),
            ("wrong key", {"additional_headers": {"Authorization": "Bearer sk-wrong"}}, "invalid_api_key"),
            ("wrong key (subprotocol)", {"sp": "sk-wrong"}, "invalid_api_key"),
            ("expired token", {"sp": past.mint("realtime:s").value}, "token_expired"),
            ("not-yet-valid token", {"sp": future.mint("realtime:s").value}, "token_not_yet_valid"),
            ("wrong-key token", {"sp": wrong.mint("realtime:s").value}, "token_invalid_signature"),
            ("alg=none token", {"sp": _none_token()}, "token_algorithm_not_allowed"),
            ("HS512 token", {"sp": hs512}, "token_algorithm_not_allowed"),
            ("other-session token (tts)", {"sp": tokens.mint("tts:s").value}, "token_wrong_session"),
            ("reused token", {"sp": reused}, "token_reused"),
            (
                "bearer: expired token",
                {"additional_headers": {"Authorization": f"Bearer {past.mint('realtime:s').value}"}},
                "token_expired",
            ),
        ]
        rows = []
        for label, kwargs, code in cases:
            sp = kwargs.pop("sp", None)
            if sp is not None:
                kwargs["subprotocols"] = ["realtime", f"openai-insecure-api-key.{sp}"]
            status, seconds, body = await attempt(s.ws, **kwargs)
            rows.append(f"{label} → {status} {code} in {seconds * 1000:.0f} ms")
            assert status == 401 and code.encode() in body and seconds < 1.0, (label, status, body)
        assert s.inner.calls == 1  # only the first, valid use got through
        # Valid ones, for contrast: a key in the header or the subprotocol, a fresh token.
        valid: list[dict[str, Any]] = [
            {"additional_headers": {"Authorization": f"Bearer {KEY}"}},
            {"subprotocols": ["realtime", f"openai-insecure-api-key.{KEY}"]},
            {"subprotocols": ["realtime", f"openai-insecure-api-key.{s.mint('realtime:sess_ok')}"]},
        ]
        for kwargs in valid:
            status, _, reply = await attempt(s.ws, **kwargs)
            assert status == 101 and reply == "ping"
        assert [p.kind for p in s.inner.principals] == ["token", "api_key", "api_key", "token"]
        assert s.inner.principals[-1].session_id == "sess_ok"
    print("auth matrix: " + "; ".join(rows))


async def test_the_app_never_sees_the_credential() -> None:
    with serve(api_keys=[KEY]) as s:
        for protocols in (
            ["realtime", f"openai-insecure-api-key.{s.mint()}"],
            [f"openai-insecure-api-key.{KEY}"],
        ):
            status, _, _ = await attempt(s.ws, subprotocols=protocols)
            assert status == 101
        status, _, _ = await attempt(s.ws, additional_headers={"Authorization": f"Bearer {KEY}"})
        assert status == 101
        assert s.inner.subprotocols == [["realtime"], [], []]
        for headers in s.inner.headers:
            assert "authorization" not in headers and "openai-insecure" not in str(headers)
            assert KEY not in str(headers)


async def test_a_browser_can_authenticate_with_its_first_message() -> None:
    with serve(api_keys=[KEY], allowed_origins=["https://app.example.com"], auth_timeout_s=0.5) as s:
        origin = Origin("https://app.example.com")
        token = s.mint("realtime:sess_first")
        async with websockets.connect(s.ws, origin=origin, subprotocols=[Subprotocol("realtime")]) as ws:
            assert ws.subprotocol == "realtime"
            await ws.send(f'{{"type": "hark.auth", "token": "{token}"}}')
            await ws.send("hello")
            assert await ws.recv() == "hello"
        assert s.inner.first_messages == ["hello"] and s.inner.principals[0].session_id == "sess_first"
        rows = []
        for label, message, reason in [
            ("replayed token", f'{{"type": "hark.auth", "token": "{token}"}}', "token_reused"),
            ("wrong key", '{"type": "hark.auth", "token": "sk-wrong"}', "invalid_api_key"),
            ("no auth message", '{"type": "session.update"}', "authentication required"),
            ("silence", None, "authentication timeout"),
        ]:
            started = time.perf_counter()
            async with websockets.connect(s.ws, origin=origin) as ws:
                if message is not None:
                    await ws.send(message)
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(2):
                        await ws.recv()
            seconds = time.perf_counter() - started
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
            assert reason in closed.value.rcvd.reason and seconds < 1.0
            rows.append(f"{label} → close 4001 ({closed.value.rcvd.reason}) in {seconds * 1000:.0f} ms")
        assert s.inner.calls == 1
    print("first-message auth: " + "; ".join(rows))


# -- session cap ----------------------------------------------------------------------------


async def test_session_cap_serves_exactly_n_and_refuses_the_rest_quickly() -> None:
    n, extra = 5, 50
    with serve(max_sessions=n) as s:
        hold = asyncio.Event()
        results: list[tuple[int | str, float]] = []

        async def one() -> None:
            started = time.perf_counter()
            try:
                async with websockets.connect(s.ws, open_timeout=5) as ws:
                    results.append((101, time.perf_counter() - started))
                    await hold.wait()
                    await ws.send("still here")
                    assert await ws.recv() == "still here"
            except InvalidStatus as exc:
                results.append((exc.response.status_code, time.perf_counter() - started))
                assert exc.response.headers.get("Retry-After") == "1"

        tasks = [asyncio.create_task(one()) for _ in range(n + extra)]
        async with asyncio.timeout(10):
            while len(results) < n + extra:
                await asyncio.sleep(0.01)
        assert s.guard.security.cap.current == n
        hold.set()
        await asyncio.gather(*tasks)
        served = [t for status, t in results if status == 101]
        refused = [t for status, t in results if status == 503]
        times = sorted(t for _, t in results)
        p95 = times[int(0.95 * len(times)) - 1]
        print(
            f"session cap {n}: {len(served)} served, {len(refused)} refused 503; refusal max "
            f"{max(refused) * 1000:.0f} ms, median {statistics.median(refused) * 1000:.0f} ms; "
            f"p95 handshake {p95 * 1000:.0f} ms"
        )
        assert len(served) == n and len(refused) == extra
        # The 55 clients share this process (and its GIL) with the server thread, so the figure
        # above includes their own handshakes; against a separate hark process
        # (tests/integration/test_load.py) refusals take ~35 ms. Bounded here for a slow CI, at
        # the p95 the reliability plan reports: one refusal in 50 once took 1.04 s while the
        # others took 70-90 ms (this process's own clients and GC share the loop).
        refused_p95 = sorted(refused)[int(0.95 * (len(refused) - 1))]
        assert refused_p95 < 1.0, refused_p95
        deadline = time.monotonic() + 2
        while s.guard.security.cap.current and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert s.guard.security.cap.current == 0
        status, _, _ = await attempt(s.ws)
        assert status == 101


# -- REST -----------------------------------------------------------------------------------


async def test_rest_needs_a_key_and_is_rate_limited() -> None:
    with serve(api_keys=[KEY], rate_limit_per_minute=3) as s:
        async with httpx.AsyncClient(base_url=s.http) as client:
            missing = await client.get("/v1/models")
            assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
            assert missing.headers["www-authenticate"] == "Bearer"
            wrong = await client.get("/v1/models", headers={"Authorization": "Bearer sk-wrong"})
            assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "invalid_request_error"
            token = await client.get("/v1/models", headers={"Authorization": f"Bearer {s.mint()}"})
            assert token.status_code == 401  # session tokens are for WebSockets, not REST
            limited = await client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
            assert limited.status_code == 429  # the address has spent its 3, even on failures
            assert s.inner.calls == 0
            for _ in range(20):
                assert (await client.get("/health")).status_code == 200  # public, not counted
    with serve(api_keys=[KEY], rate_limit_per_minute=3) as s:
        async with httpx.AsyncClient(base_url=s.http) as client:
            auth = {"Authorization": f"Bearer {KEY}"}
            statuses = [(await client.get("/v1/models", headers=auth)).status_code for _ in range(5)]
            assert statuses == [200, 200, 200, 429, 429]
            limited = await client.get("/v1/models", headers=auth)
            assert int(limited.headers["retry-after"]) >= 1
            assert limited.json()["error"]["code"] == "rate_limit_exceeded"
            assert s.inner.calls == 3
        print(f"REST 3/min: {statuses}, Retry-After {limited.headers['retry-after']} s")


async def test_websocket_upgrades_are_rate_limited_per_address() -> None:
    with serve(rate_limit_per_minute=2) as s:
        statuses = [(await attempt(s.ws))[0] for _ in range(3)]
        assert statuses == [101, 101, 429]


async def test_denials_do_not_log_a_spurious_error() -> None:
    """uvicorn (websockets-sansio) logs an ERROR after every denial response; the filter drops
    exactly that record, and only for connections the guard refused."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("uvicorn.error")
    handler = Keep(logging.ERROR)

    async def refused_once() -> list[str]:
        records.clear()
        with serve(api_keys=[KEY]) as s:
            logger.addHandler(handler)
            try:
                status, _, _ = await attempt(s.ws)
                await asyncio.sleep(0.1)
            finally:
                logger.removeHandler(handler)
        assert status == 401
        return list(records)

    for existing in [f for f in logger.filters if type(f).__name__ == "_DenialLogFilter"]:
        logger.removeFilter(existing)
    without = await refused_once()
    install_denial_log_filter()
    with_filter = await refused_once()
    print(f"uvicorn ERROR records per denial: {len(without)} without the filter, {len(with_filter)} with it")
    # uvicorn up to at least 0.3x logs that ERROR after a denial; 0.55 (with websockets 16.1)
    # no longer does. Either way nothing else may be logged, and with the filter nothing at all.
    assert without in ([], ["ASGI callable returned without completing handshake."])
    assert with_filter == []


# -- frame size -----------------------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _raw_upgrade(port: int, *, deflate: bool = False) -> tuple[socket.socket, str]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /v1/realtime HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "connection closed during the handshake"
        response += chunk
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    assert head.startswith("HTTP/1.1 101"), head
    return sock, head.lower()


def _frame_header(length: int, *, rsv1: bool = False) -> bytes:
    first = 0x80 | (0x40 if rsv1 else 0) | 0x1  # FIN, text
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + b"\x00\x00\x00\x00"  # a zero mask key: the payload goes as is


def _read_close(sock: socket.socket, timeout: float = 2.0) -> tuple[int, str]:
    """Read server frames until a close frame (pings are skipped); (1006, ...) if none comes."""
    sock.settimeout(timeout)
    data = b""
    while True:
        while len(data) >= 2:
            opcode, length = data[0] & 0x0F, data[1] & 0x7F
            offset = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            if len(data) < offset:
                break
            if length == 126:
                length = struct.unpack("!H", data[2:4])[0]
            elif length == 127:
                length = struct.unpack("!Q", data[2:10])[0]
            if len(data) < offset + length:
                break
            payload, data = data[offset : offset + length], data[offset + length :]
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            chunk = b""
        if not chunk:
            return 1006, "no close frame"
        data += chunk


def _send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    def send() -> None:
        try:
            view = memoryview(data)
            while view:
                sent = sock.send(view[:65536])
                view = view[sent:]
        except OSError:
            pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


async def test_oversized_frames_close_1009_quickly() -> None:
    with serve(max_frame_bytes=FRAME_LIMIT) as s:
        # 1. A plain 20 MB frame: refused on its header.
        payload = b"x" * (20 * 1024 * 1024)
        rss_before = _rss_kib()
        sock, _ = _raw_upgrade(s.port, deflate=False)
        started = time.perf_counter()
        sock.sendall(_frame_header(len(payload)))
        sender = _send_in_background(sock, payload)
        code, reason = await asyncio.to_thread(_read_close, sock)
        plain_ms = (time.perf_counter() - started) * 1000
        sock.close()
        sender.join(timeout=5)
        plain_rss = _rss_kib() - rss_before
        # 2. 20 kB on the wire that inflates to 20 MB (RELIABILITY #1).
        sock, head = _raw_upgrade(s.port, deflate=True)
        assert "permessage-deflate" in head and "client_max_window_bits=12" in head
        compressor = zlib.compressobj(9, zlib.DEFLATED, -12)
        bomb = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert bomb.endswith(b"\x00\x00\xff\xff")
        bomb = bomb[:-4]
        rss_before = _rss_kib()
        started = time.perf_counter()
        sock.sendall(_frame_header(len(bomb), rsv1=True) + bomb)
        bomb_code, bomb_reason = await asyncio.to_thread(_read_close, sock)
        bomb_ms = (time.perf_counter() - started) * 1000
        sock.close()
        bomb_rss = _rss_kib() - rss_before
        # 3. A frame under the limit still works, compressed or not.
        status, _, reply = await attempt(s.ws, max_size=None)
        assert status == 101 and reply == "ping"
        async with websockets.connect(s.ws) as ws:
            await ws.send("y" * (FRAME_LIMIT // 2))
            assert len(await ws.recv()) == FRAME_LIMIT // 2
        assert s.inner.calls == 4
    print(
        f"frame limit {FRAME_LIMIT} B: 20 MB frame → close {code} ({reason}) in {plain_ms:.1f} ms, "
        f"RSS {plain_rss:+d} KiB; {len(bomb)} B deflated → 20 MB → close {bomb_code} ({bomb_reason}) "
        f"in {bomb_ms:.1f} ms, RSS {bomb_rss:+d} KiB"
    )
    assert code == 1009 and plain_ms < 100
    assert bomb_code == 1009 and bomb_ms < 100
    assert bomb_rss < 16 * 1024


# -- keepalive ------------------------------------------------------------------------------


async def test_a_client_that_stops_answering_pings_is_closed_and_its_slot_freed() -> None:
    interval, timeout = 0.2, 0.3
    with serve(ping_interval_s=interval, ping_timeout_s=timeout) as s:
        sock, _ = _raw_upgrade(s.port)  # a raw socket never answers pings
        started = time.perf_counter()
        assert s.guard.security.cap.current == 1
        code, reason = await asyncio.to_thread(_read_close, sock, 5.0)
        detected = time.perf_counter() - started
        sock.close()
        deadline = time.monotonic() + 2
        while s.guard.security.cap.current and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        print(
            f"keepalive {interval}+{timeout} s: close {code} ({reason}) after {detected:.2f} s; "
            f"sessions {s.guard.security.cap.current}"
        )
        assert code == 1011 and detected < interval + timeout + 0.3
        assert s.guard.security.cap.current == 0


# -- the browser flow with FastAPI ----------------------------------------------------------


async def test_a_backend_mints_a_token_and_a_browser_connects_with_it() -> None:
    settings = Settings(security={"api_keys": [KEY], "token_secret": SECRET})
    app = FastAPI()
    security = Security.from_settings(settings)
    app.include_router(client_secrets_router(security.tokens))

    @app.websocket("/v1/realtime", dependencies=[Depends(session_token("realtime"))])
    async def realtime(websocket: WebSocket) -> None:
        principal = principal_of(websocket.scope)
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
        await websocket.send_json(
            {"type": "session.created", "session": {"id": principal and principal.session_id}}
        )
        await websocket.close()

    app.add_middleware(HandshakeGuard, settings=settings, security=security, routes=app.routes)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            refused = await client.post("/v1/realtime/client_secrets", json={})
            assert refused.status_code == 401
            minted = await client.post(
                "/v1/realtime/client_secrets",
                json={"session": {"type": "realtime"}},
                headers={"Authorization": f"Bearer {KEY}"},
            )
            assert minted.status_code == 200
        secret = minted.json()
        protocols = [Subprotocol("realtime"), Subprotocol(f"openai-insecure-api-key.{secret['value']}")]
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", subprotocols=protocols) as ws:
            assert ws.subprotocol == "realtime"
            created = json.loads(await ws.recv())
        assert created["session"]["id"] == secret["session"]["id"]
        with pytest.raises(InvalidStatus) as replay:
            async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", subprotocols=protocols):
                pass
        assert replay.value.response.status_code == 401
    finally:
        server.should_exit = True
        thread.join(timeout=10)
