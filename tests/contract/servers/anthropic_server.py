"""A loopback Anthropic Messages API (``POST /v1/messages``, streamed as server-sent events),
and the scaffolding every LLM stand-in shares: a scripted reply, recorded requests and the
``FaultPlan`` vocabulary, served as bytes paced by hand so a fault can cut or spoil a stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.contract.faults import Fault, FaultPlan

REPLY = "Paris is sunny and mild today. You will not need an umbrella."

ErrorFactory = Callable[[int, dict[str, str]], Response]


@dataclass
class FakeLLM:
    """Knobs shared by every LLM stand-in. Tests set them, never patch hark."""

    api_key: str = "test-key"
    reply: str = REPLY
    """Streamed a word at a time."""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Calls (name, arguments) the reply makes after its text."""
    token_delay: float = 0.0
    fail_status: int | None = None
    """Answer every request with this HTTP status (the provider's error shape)."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    requests: list[dict[str, Any]] = field(default_factory=list)
    closing: bool = False
    """Set when the server shuts down, so a stalled handler lets go."""

    def reset(self) -> None:
        fresh = type(self)()
        for name in ("reply", "tool_calls", "token_delay", "fail_status", "faults"):
            setattr(self, name, getattr(fresh, name))
        self.requests.clear()

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    def words(self) -> list[str]:
        words = self.reply.split(" ") if self.reply else []
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    async def record(self, request: Request) -> Any:
        body = await request.json()
        self.requests.append(
            {
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return body

    async def stall(self, request: Request, limit: float = 30.0) -> None:
        """Hold the request unanswered until the client gives up (or the server closes)."""
        deadline = time.monotonic() + limit
        while not self.closing and time.monotonic() < deadline and not await request.is_disconnected():
            await asyncio.sleep(0.02)

    async def refuse(self, request: Request, fault: Fault, error: ErrorFactory) -> Response | None:
        """The answer for a failing request, or None when it is to be served."""
        if self.fail_status is not None:
            return error(self.fail_status, {})
        if fault is Fault.STALL:
            await self.stall(request)
            return Response(status_code=504)
        if fault is Fault.HTTP_500:
            return error(500, {})
        if fault is Fault.HTTP_429:
            return error(429, {"Retry-After": f"{self.faults.retry_after:g}"})
        return None


class SSEResponse(Response):
    """Server-sent events written by hand: DISCONNECT drops the connection halfway, MALFORMED
    swaps the middle frame for ``garbage``, SLOW_FIRST_BYTE holds the headers back."""

    def __init__(self, fake: FakeLLM, frames: list[bytes], fault: Fault, garbage: bytes) -> None:
        super().__init__(media_type="text/event-stream")
        self.fake, self.frames, self.fault, self.garbage = fake, frames, fault, garbage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fault is Fault.SLOW_FIRST_BYTE:
            await asyncio.sleep(self.fake.faults.delay)
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        cut = len(self.frames) // 2
        for index, frame in enumerate(self.frames):
            if index == cut and self.fault is Fault.DISCONNECT:
                return  # The body never completes: uvicorn drops the connection.
            if index == cut and self.fault is Fault.MALFORMED:
                await send({"type": "http.response.body", "body": self.garbage, "more_body": True})
                break
            if index and self.fake.token_delay:
                await asyncio.sleep(self.fake.token_delay)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


# --- Anthropic -------------------------------------------------------------------------------

GARBAGE = b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": <html>\n\n'
"""A frame with a real event name (the SDK skips nameless ones) and data that is not JSON."""


def _error(status: int, headers: dict[str, str], kind: str = "", message: str = "injected") -> Response:
    kind = kind or {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status, headers=headers)


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def thirds(arguments: dict[str, Any]) -> list[str]:
    """The arguments' JSON in three pieces, cut wherever they fall, as a model streams them."""
    text = json.dumps(arguments)
    third = len(text) // 3
    return [text[:third], text[third : 2 * third], text[2 * third :]]


def _unanswered_tool_use(messages: list[dict[str, Any]]) -> str | None:
    """What the real API rejects: a tool_use not answered in the very next (user) turn."""
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or not isinstance(message["content"], list):
            continue
        following = messages[index + 1]["content"] if index + 1 < len(messages) else []
        answered = {b.get("tool_use_id") for b in following if isinstance(b, dict)}
        for block in message["content"]:
            if block["type"] == "tool_use" and block["id"] not in answered:
                return str(block["id"])
    return None


@dataclass
class FakeAnthropic(FakeLLM):
    error_event: str | None = None
    """An error type (e.g. ``overloaded_error``) the stream reports halfway, as an ``error`` event."""

    def reset(self) -> None:
        super().reset()
        self.error_event = None

    def _auth(self, request: Request) -> Response | None:
        # The API takes the key as x-api-key or, as SDK 2.x sends it, a bearer token.
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key not in (request.headers.get("x-api-key"), bearer):
            return _error(401, {}, message="invalid x-api-key")
        return None

    async def messages(self, request: Request) -> Response:
        body = await self.record(request)
        fault = self.faults.take()
        if (denied := self._auth(request)) is not None:
            return denied
        if not request.headers.get("anthropic-version"):
            return _error(400, {}, message="anthropic-version: header is required")
        if (refused := await self.refuse(request, fault, _error)) is not None:
            return refused
        if not body.get("stream") or not isinstance(body.get("max_tokens"), int) or not body.get("messages"):
            return _error(400, {}, message="this stand-in streams, and needs max_tokens and messages")
        if (call_id := _unanswered_tool_use(body["messages"])) is not None:
            return _error(400, {}, message=f"tool_use ids were found without tool_result blocks: {call_id}")
        return SSEResponse(self, self.frames(body["model"]), fault, GARBAGE)

    def frames(self, model: str) -> list[bytes]:
        message: dict[str, Any] = {
            "id": "msg_stand_in",
            "type": "message",
            "role": "assistant",
            "model": model,
        }
        message |= {"content": [], "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 12}}
        frames = [_event("message_start", {"message": message})]
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []  # (block, its deltas)
        if self.reply:
            text = [{"type": "text_delta", "text": word} for word in self.words()]
            blocks.append(({"type": "text", "text": ""}, text))
        for number, (name, arguments) in enumerate(self.tool_calls):
            block = {"type": "tool_use", "id": f"toolu_stand_in_{number}", "name": name, "input": {}}
            blocks.append(
                (block, [{"type": "input_json_delta", "partial_json": p} for p in thirds(arguments)])
            )
        for index, (block, deltas) in enumerate(blocks):
            frames.append(_event("content_block_start", {"index": index, "content_block": block}))
            frames.append(_event("ping", {}))
            frames += [_event("content_block_delta", {"index": index, "delta": d}) for d in deltas]
            frames.append(_event("content_block_stop", {"index": index}))
        stop = {"stop_reason": "tool_use" if self.tool_calls else "end_turn", "stop_sequence": None}
        frames.append(_event("message_delta", {"delta": stop, "usage": {"output_tokens": 20}}))
        frames.append(_event("message_stop", {}))
        if self.error_event is not None:  # The API ends the stream with it, in place of the rest.
            frames[len(frames) // 2 :] = [
                _event("error", {"error": {"type": self.error_event, "message": "!"}})
            ]
        return frames

    async def models(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        model = {
            "type": "model",
            "id": "claude-stand-in",
            "display_name": "Stand-in",
            "created_at": "2025-01-01T00:00:00Z",
        }
        return JSONResponse(
            {"data": [model], "has_more": False, "first_id": model["id"], "last_id": model["id"]}
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )
