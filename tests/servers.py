"""Loopback servers for tests: a real hark process, and an OpenAI-compatible stand-in LLM."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sse(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(data)}\n\n".encode()


def _text(content: Any) -> str:
    """A chat message's text, whether its content is a string or a list of parts."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def _last_user(messages: list[dict[str, Any]]) -> str:
    """The last user message's text, lower-cased; empty when there is none."""
    users = [m for m in messages if m.get("role") == "user"]
    return _text(users[-1].get("content")).lower() if users else ""


@dataclass
class FakeChatLLM:
    """Speaks the OpenAI chat-completions SSE format. Knobs instead of patches."""

    reply: str = "Paris is sunny and mild today. You will not need an umbrella."
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    fail_status: int | None = None
    stall: bool = False
    """Accept every request and never answer (models list included, so probes fail too)."""
    tool_call: tuple[str, str] | None = None
    """(name, JSON arguments): asked for when the request offers that tool and has no tool result yet."""
    tool_call_when: str | None = None
    """Ask for ``tool_call`` only when the last user message holds this word (any case)."""
    tool_reply: str = "Here it is: {result}"
    """The answer once a tool result is in the messages."""
    replies: list[str] = field(default_factory=list)
    """Scripted replies, one per request, used before ``reply``."""
    answers: dict[str, str] = field(default_factory=dict)
    """Replies chosen by a word in the last user message (any case), before ``replies``."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    tool_calls_made: int = 0
    """Each call gets its own id: call_fake_1, call_fake_2, ..."""

    def tokens(self, text: str) -> list[str]:
        words = text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("authorization")})
        if self.stall:
            await asyncio.Event().wait()
        if self.fail_status is not None:
            return JSONResponse(
                {"error": {"message": "injected failure", "type": "server_error"}}, self.fail_status
            )
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "tool":
            text = self.tool_reply.format(result=messages[-1].get("content", ""))
        elif self._wants_tool(body):
            return StreamingResponse(
                self._stream_tool_call(body.get("model", "fake")), media_type="text/event-stream"
            )
        elif (answer := self._answer(messages)) is not None:
            text = answer
        else:
            text = self.replies.pop(0) if self.replies else self.reply
        if not body.get("stream"):
            return JSONResponse(self._completion(text))
        return StreamingResponse(
            self._stream(body.get("model", "fake"), text), media_type="text/event-stream"
        )

    def _wants_tool(self, body: dict[str, Any]) -> bool:
        if self.tool_call is None:
            return False
        offered = {(t.get("function") or {}).get("name") for t in body.get("tools") or []}
        if self.tool_call[0] not in offered:
            return False
        heard = _last_user(body.get("messages") or [])
        return self.tool_call_when is None or self.tool_call_when.lower() in heard

    def _answer(self, messages: list[dict[str, Any]]) -> str | None:
        heard = _last_user(messages)
        return next((text for word, text in self.answers.items() if word.lower() in heard), None)

    def _completion(self, text: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "fake",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
        }

    async def _stream_tool_call(self, model: str) -> AsyncIterator[bytes]:
        assert self.tool_call is not None
        name, arguments = self.tool_call
        self.tool_calls_made += 1
        yield _sse(model, {"role": "assistant", "content": None})
        first = {
            "index": 0,
            "id": f"call_fake_{self.tool_calls_made}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        yield _sse(model, {"tool_calls": [first]})
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            yield _sse(model, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield _sse(model, {}, "tool_calls")
        yield b"data: [DONE]\n\n"

    async def _stream(self, model: str, text: str) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _sse(model, delta, finish)

        await asyncio.sleep(self.first_token_delay)
        yield chunk({"role": "assistant", "content": ""})
        for token in self.tokens(text):
            yield chunk({"content": token})
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
        yield chunk({}, "stop")
        yield b"data: [DONE]\n\n"

    async def models(self, request: Request) -> Response:
        if self.stall:
            await asyncio.Event().wait()
        return JSONResponse(
            {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "test"}]}
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )


class ThreadedServer:
    """A uvicorn server for an ASGI app, in a thread of the test process."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class HarkProcess:
    """A real `hark serve` process on a free port."""

    def __init__(self, env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HARK_")}
        # The suite makes many requests from one address; tests of the limit set their own.
        self.env["HARK_SECURITY_RATE_LIMIT_PER_MINUTE"] = "1000000"
        # ... and the per-tenant cost budgets likewise (with auth off all of it is one tenant).
        self.env["HARK_SECURITY_MAX_JOBS_PER_KEY"] = "1000"
        self.env["HARK_SECURITY_TTS_CHARS_PER_MINUTE"] = "100000000"
        self.env["HARK_SECURITY_STT_AUDIO_S_PER_MINUTE"] = "1000000"
        self.env.update(env or {})
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime?model=hark"

    def __enter__(self) -> HarkProcess:
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hark", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hark exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("hark did not become healthy in 120 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
