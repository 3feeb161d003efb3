"""A loopback OpenAI speech endpoint: ``POST /v1/audio/speech`` answering raw 24 kHz PCM16."""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.contract.faults import Fault
from tests.contract.servers.elevenlabs_server import AudioResponse, FakeTTS

RATE = 24000


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": {"message": message, "type": kind, "code": None}}, status, headers=headers)


@dataclass
class FakeOpenAISpeech(FakeTTS):
    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid_request_error", "Incorrect API key provided")
        return None

    async def speech(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"auth": request.headers.get("authorization"), "body": body})
        fault = self.faults.take()
        if (denied := self._auth(request)) is not None:
            return denied
        if self.fail_status is not None:
            return _error(self.fail_status, "server_error", "injected failure")
        if fault is Fault.STALL:
            await self.stall(request)
            return Response(status_code=504)
        if fault is Fault.HTTP_500:
            return _error(500, "server_error", "injected server error")
        if fault is Fault.HTTP_429:
            retry = {"Retry-After": str(self.faults.retry_after)}
            return _error(429, "rate_limit_error", "Rate limit reached", retry)
        if body.get("response_format") != "pcm" or not isinstance(body.get("input"), str):
            return _error(400, "invalid_request_error", "this stand-in speaks response_format=pcm only")
        return AudioResponse(self, body["input"], RATE, fault, "audio/pcm")

    async def models(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        model = {"id": "gpt-4o-mini-tts", "object": "model", "created": int(time.time()), "owned_by": "test"}
        return JSONResponse({"object": "list", "data": [model]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/audio/speech", self.speech, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )
