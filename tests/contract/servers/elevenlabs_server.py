"""A loopback ElevenLabs: ``POST /v1/text-to-speech/{voice_id}/stream`` answering raw PCM16."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.contract.servers.common import AudioResponse, FakeTTS

VOICE = "JBFqnCBsd6RMkjVDRZzb"
_CODES = {429: "too_many_concurrent_requests", 500: "internal_error"}


def _error(
    status: int, headers: dict[str, str], code: str = "", message: str = "injected failure"
) -> Response:
    body = {"detail": {"status": code or _CODES.get(status, "injected"), "message": message}}
    return JSONResponse(body, status, headers=headers)


@dataclass
class FakeElevenLabs(FakeTTS):
    voice: str = VOICE

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("xi-api-key") != self.api_key:
            return _error(401, {}, "invalid_api_key", "Invalid API key")
        return None

    async def stream(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(
            {
                "voice": request.path_params["voice_id"],
                "query": dict(request.query_params),
                "key": request.headers.get("xi-api-key"),
                "body": body,
            }
        )
        fault = self.faults.take()
        if (denied := self._auth(request)) is not None:
            return denied
        if (refused := await self.refuse(request, fault, _error)) is not None:
            return refused
        if request.path_params["voice_id"] != self.voice:
            return _error(404, {}, "voice_not_found", "A voice with that voice_id was not found")
        fmt = request.query_params.get("output_format", "mp3_44100_128")
        if not fmt.startswith("pcm_") or not isinstance(body.get("text"), str):
            return _error(400, {}, "invalid_request", "this stand-in speaks pcm_<rate> and needs text")
        return AudioResponse(self, body["text"], int(fmt[4:]), fault, "audio/pcm")

    async def get_voice(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        if request.path_params["voice_id"] != self.voice:
            return _error(404, {}, "voice_not_found", "A voice with that voice_id was not found")
        return JSONResponse({"voice_id": self.voice, "name": "Stand-in"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/text-to-speech/{voice_id}/stream", self.stream, methods=["POST"]),
                Route("/v1/voices/{voice_id}", self.get_voice, methods=["GET"]),
            ]
        )
