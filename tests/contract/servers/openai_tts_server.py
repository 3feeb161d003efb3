"""A loopback OpenAI speech endpoint: ``POST /v1/audio/speech`` answering raw 24 kHz PCM16."""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.contract.servers.common import AudioResponse, FakeTTS, openai_denied, openai_error

RATE = 24000


@dataclass
class FakeOpenAISpeech(FakeTTS):
    async def speech(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"auth": request.headers.get("authorization"), "body": body})
        fault = self.faults.take()
        if (refused := openai_denied(request, self.api_key)) is not None:
            return refused
        if (refused := await self.refuse(request, fault, openai_error)) is not None:
            return refused
        if body.get("response_format") != "pcm" or not isinstance(body.get("input"), str):
            problem = "this stand-in speaks response_format=pcm only"
            return openai_error(400, {}, "invalid_request_error", problem)
        return AudioResponse(self, body["input"], RATE, fault, "audio/pcm")

    async def models(self, request: Request) -> Response:
        if (refused := openai_denied(request, self.api_key)) is not None:
            return refused
        model = {"id": "gpt-4o-mini-tts", "object": "model", "created": int(time.time()), "owned_by": "test"}
        return JSONResponse({"object": "list", "data": [model]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/audio/speech", self.speech, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )
