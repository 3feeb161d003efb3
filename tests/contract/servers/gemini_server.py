"""A loopback Gemini API: ``POST /{version}/models/{model}:streamGenerateContent?alt=sse`` answering
server-sent events, each ``data:`` a GenerateContentResponse, and ``GET /{version}/models/{model}``
(``version`` is ``v1`` or ``v1beta``, as on the real API)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.contract.servers.common import FakeLLM, SSEResponse

GARBAGE = b'data: {"candidates": [{"content": <html>\r\n\r\n'
_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _error(status: int, headers: dict[str, str], message: str = "injected") -> Response:
    body = {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}
    return JSONResponse(body, status, headers=headers)


def signature(number: int) -> str:
    """The thought signature the stand-in puts on its ``number``-th call (base64, as on the wire)."""
    return base64.b64encode(f"signature-{number}".encode()).decode()


def _frame(parts: list[dict[str, Any]], finish: str | None = None) -> bytes:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-stand-in"}
    if finish is not None:
        candidate["finishReason"] = finish
        chunk["usageMetadata"] = {"promptTokenCount": 12, "candidatesTokenCount": 20, "totalTokenCount": 32}
    return f"data: {json.dumps(chunk)}\r\n\r\n".encode()


@dataclass
class FakeGemini(FakeLLM):
    call_ids: bool = False
    """Whether function calls carry an ``id`` (newer models send one)."""

    def reset(self) -> None:
        super().reset()
        self.call_ids = False

    def _auth(self, request: Request) -> Response | None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if key is None:
            return _error(403, {}, "Method doesn't allow unregistered callers")
        if key != self.api_key:
            return _error(400, {}, "API key not valid. Please pass a valid API key.")
        return None

    async def generate(self, request: Request) -> Response:
        method = request.path_params["target"].partition(":")[2]
        if request.path_params["version"] not in ("v1", "v1beta"):
            return _error(404, {}, "Not Found")
        if method != "streamGenerateContent" or request.query_params.get("alt") != "sse":
            return _error(400, {}, "this stand-in only streams (streamGenerateContent?alt=sse)")
        body = await self.record(request)
        fault = self.faults.take()
        if (denied := self._auth(request)) is not None:
            return denied
        if (refused := await self.refuse(request, fault, _error)) is not None:
            return refused
        if (problem := _invalid(body)) is not None:
            return _error(400, {}, problem)
        return SSEResponse(self, self.frames(), fault, GARBAGE)

    def frames(self) -> list[bytes]:
        parts = [[{"text": word}] for word in self.words()]
        calls: list[dict[str, Any]] = []
        for number, (name, arguments) in enumerate(self.tool_calls):
            call: dict[str, Any] = {"name": name, "args": arguments}
            if self.call_ids:
                call["id"] = f"stand-in-call-{number}"
            calls.append({"functionCall": call, "thoughtSignature": signature(number)})
        if calls:
            parts.append(calls)
        parts = parts or [[{"text": ""}]]
        return [_frame(p, "STOP" if i == len(parts) - 1 else None) for i, p in enumerate(parts)]

    async def get_model(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        name = f"models/{request.path_params['target']}"
        return JSONResponse({"name": name, "displayName": "Stand-in", "inputTokenLimit": 32768})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/{version:str}/models/{target:path}", self.generate, methods=["POST"]),
                Route("/{version:str}/models/{target:path}", self.get_model, methods=["GET"]),
            ]
        )


def _invalid(body: dict[str, Any]) -> str | None:
    """What the real API rejects, as far as these tests can tell."""
    contents = body.get("contents")
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for content in contents:
        if content.get("role") not in ("user", "model"):
            return f"Please use a valid role: user, model (got {content.get('role')!r})"
        for part in content.get("parts") or []:
            if "functionResponse" in part and not part["functionResponse"].get("name"):
                return "* function_response.name: Name cannot be empty."
    return None
