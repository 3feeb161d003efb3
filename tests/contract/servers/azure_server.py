"""A loopback Azure OpenAI: ``POST /openai/deployments/{deployment}/chat/completions?api-version=``
with an ``api-key`` header, answering OpenAI chat-completion chunks as server-sent events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.contract.servers.common import FakeLLM, SSEResponse

DEPLOYMENT = "gpt-4o-mini-prod"
GARBAGE = b'data: {"choices": [{"delta": <html>\n\n'


def _error(status: int, headers: dict[str, str], message: str = "injected") -> Response:
    return JSONResponse({"error": {"code": str(status), "message": message}}, status, headers=headers)


def _data(payload: dict[str, Any] | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


@dataclass
class FakeAzure(FakeLLM):
    deployment: str = DEPLOYMENT

    def _auth(self, request: Request) -> Response | None:
        if not request.query_params.get("api-version"):
            return _error(404, {}, "Resource not found")  # What Azure says without an api-version.
        if request.headers.get("api-key") != self.api_key:
            return _error(401, {}, "Access denied due to invalid subscription key or wrong API endpoint.")
        return None

    async def chat(self, request: Request) -> Response:
        body = await self.record(request)
        fault = self.faults.take()
        if (denied := self._auth(request)) is not None:
            return denied
        if request.path_params["deployment"] != self.deployment:
            return _error(404, {}, "The API deployment for this resource does not exist.")
        if (refused := await self.refuse(request, fault, _error)) is not None:
            return refused
        if not body.get("stream") or not body.get("messages"):
            return _error(400, {}, "this stand-in streams, and needs messages")
        return SSEResponse(self, self.frames(), fault, GARBAGE)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "content_filter_results": {}}
        return _data(
            {
                "id": "chatcmpl-stand-in",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [choice],
            }
        )

    def frames(self) -> list[bytes]:
        # Azure's first event carries only the prompt's content-filter results, and no choices.
        filters = {"prompt_index": 0, "content_filter_results": {}}
        frames = [
            _data(
                {
                    "id": "",
                    "object": "",
                    "created": 0,
                    "model": "",
                    "choices": [],
                    "prompt_filter_results": [filters],
                }
            )
        ]
        frames.append(self._chunk({"role": "assistant", "content": ""}))
        frames += [self._chunk({"content": word}) for word in self.words()]
        for index, (name, arguments) in enumerate(self.tool_calls):
            start = {"index": index, "id": f"call_stand_in_{index}", "type": "function"}
            frames.append(
                self._chunk({"tool_calls": [start | {"function": {"name": name, "arguments": ""}}]})
            )
            text = json.dumps(arguments)
            for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                frames.append(
                    self._chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                )
        frames.append(self._chunk({}, "tool_calls" if self.tool_calls else "stop"))
        frames.append(_data("[DONE]"))
        return frames

    async def models(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        model = {"id": "gpt-4o-mini", "object": "model", "created_at": 1, "status": "succeeded"}
        return JSONResponse({"object": "list", "data": [model]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/openai/deployments/{deployment}/chat/completions", self.chat, methods=["POST"]),
                Route("/openai/models", self.models, methods=["GET"]),
            ]
        )
