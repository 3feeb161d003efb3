"""A loopback Anthropic Messages API: ``POST /v1/messages``, streamed as server-sent events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.contract.servers.common import FakeLLM, SSEResponse

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
