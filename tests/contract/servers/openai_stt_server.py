"""A loopback OpenAI transcription endpoint: ``POST /v1/audio/transcriptions`` (multipart).

It does not recognise speech: it checks the upload is a 16 kHz mono PCM16 WAV, records it, and
answers a scripted text. Faults come from a ``FaultPlan``. The multipart body is parsed with the
standard library's email parser, so the stand-in needs no python-multipart.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import wave
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.contract.faults import Fault
from tests.contract.servers.common import FakeProvider, openai_denied, openai_error


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, Any]]:
    """(text fields, {name: (filename, content type, bytes)}) of a multipart/form-data body."""
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ValueError("not multipart")
    fields: dict[str, str] = {}
    files: dict[str, Any] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        if part.get_filename() is None:
            fields[name] = payload.decode()
        else:
            files[name] = (part.get_filename(), part.get_content_type(), payload)
    return fields, files


@dataclass
class Upload:
    """One transcription request as the server saw it."""

    authorization: str | None
    fields: dict[str, str]
    filename: str | None
    content_type: str | None
    wav: bytes
    fault: Fault
    rate: int = 0
    channels: int = 0
    width: int = 0
    pcm: bytes = b""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.pcm).hexdigest()


class TruncatedJSON(Response):
    """Starts a JSON body it never finishes: uvicorn drops the connection mid-response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"200")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"text": "Turn on', "more_body": True})


@dataclass
class FakeOpenAISTT(FakeProvider):
    api_key: str = "sk-test-stt"
    transcript: str = "Turn on the kitchen lights. And set a timer for ten minutes."
    malformed: bytes = b"{this is not json"
    """The 200 body a MALFORMED fault sends; JSON of the wrong shape works too."""
    uploads: list[Upload] = field(default_factory=list)
    model_checks: list[str | None] = field(default_factory=list)

    def reset(self) -> None:
        self.faults.set(Fault.NONE)
        self.faults.requests = 0
        self.transcript, self.malformed = FakeOpenAISTT.transcript, FakeOpenAISTT.malformed
        self.uploads.clear()
        self.model_checks.clear()

    async def transcriptions(self, request: Request) -> Response:
        fault = self.faults.take()
        try:
            fields, files = parse_multipart(request.headers.get("content-type", ""), await request.body())
        except ValueError:
            return openai_error(400, {}, "invalid_request_error", "expected multipart/form-data")
        filename, content_type, wav = files.get("file", (None, None, b""))
        upload = Upload(request.headers.get("authorization"), fields, filename, content_type, wav, fault)
        self.uploads.append(upload)
        if (denied := openai_denied(request, self.api_key)) is not None:
            return denied
        if (problem := self._check_wav(upload)) is not None:
            return openai_error(400, {}, "invalid_request_error", problem)
        return await self._answer(request, upload)

    def _check_wav(self, upload: Upload) -> str | None:
        if "model" not in upload.fields:
            return "model is required"
        try:
            with wave.open(io.BytesIO(upload.wav)) as reader:
                upload.rate, upload.channels = reader.getframerate(), reader.getnchannels()
                upload.width, upload.pcm = reader.getsampwidth(), reader.readframes(reader.getnframes())
        except (wave.Error, EOFError) as exc:
            return f"the file is not a valid WAV: {exc}"
        if (upload.rate, upload.channels, upload.width) != (16000, 1, 2):
            return (
                f"expected 16 kHz mono PCM16, got {upload.rate} Hz x{upload.channels} {upload.width * 8}-bit"
            )
        return None

    async def _answer(self, request: Request, upload: Upload) -> Response:
        fault = upload.fault
        if (refused := await self.refuse(request, fault, openai_error)) is not None:
            return refused
        if fault is Fault.MALFORMED:
            return Response(self.malformed, media_type="application/json")
        if fault is Fault.DISCONNECT:
            return TruncatedJSON()
        if fault is Fault.SLOW_FIRST_BYTE:
            await asyncio.sleep(self.faults.delay)
        seconds = len(upload.pcm) / 2 / 16000
        usage: dict[str, Any] = {"type": "duration", "seconds": round(seconds, 3)}
        return JSONResponse({"text": self.transcript, "usage": usage})

    async def models(self, request: Request) -> Response:
        self.model_checks.append(request.headers.get("authorization"))
        if (denied := openai_denied(request, self.api_key)) is not None:
            return denied
        model = {"id": "gpt-4o-mini-transcribe", "object": "model", "created": 0, "owned_by": "test"}
        return JSONResponse({"object": "list", "data": [model]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/audio/transcriptions", self.transcriptions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )
