"""OpenAI-compatible HTTP endpoints: speech, transcriptions, translations, chat, models.

Request and response shapes follow OpenAI's API; errors use its error body
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from hark.audio import AudioFormatError, AudioTooLong, PCM16Resampler, change_speed, decode_audio_file
from hark.engines.base import ToolCall, Transcript
from hark.errors import EngineError
from hark.pipeline.sentences import SentenceSplitter
from hark.security.access import API_KEY
from hark.security.budget import BudgetExceeded, Job
from hark.security.scope import owner_of
from hark.services import services_of
from hark.transports.openai_wire import (
    APIError,
    ChatRequest,
    TranscriptFormat,
    budget_error,
    chat_messages,
    chat_options,
    engine_error,
    render_transcript,
    tool_call_json,
)
from hark.transports.openai_wire import install_error_handlers as install_error_handlers

router = APIRouter(prefix="/v1", dependencies=[API_KEY])

MAX_SPEECH_INPUT = 4096
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
STT_RATE = 16_000
SPEECH_RATE = 24_000
# OpenAI's voice names all map onto the configured voice, so clients written for OpenAI work.
VOICES = frozenset(
    {
        "alloy",
        "ash",
        "ballad",
        "coral",
        "echo",
        "fable",
        "onyx",
        "nova",
        "sage",
        "shimmer",
        "verse",
        "marin",
        "cedar",
        "hark",
        "default",
    }
)
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


def _start_job(request: Request) -> Job:
    """A running-request place in the caller's tenant budget (429 when it has none left)."""
    try:
        return services_of(request).security.budget.start(owner_of(request.scope))
    except BudgetExceeded as exc:
        raise budget_error(exc) from None


def _charge(request: Request, resource: Literal["tts_chars", "stt_audio_s"], amount: float) -> None:
    try:
        services_of(request).security.budget.charge(owner_of(request.scope), resource, amount)
    except BudgetExceeded as exc:
        raise budget_error(exc) from None


# -- speech -----------------------------------------------------------------------------


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=256)
    input: str = Field(min_length=1, max_length=MAX_SPEECH_INPUT)
    voice: str = Field(min_length=1, max_length=64)
    response_format: SpeechFormat = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(None, max_length=4096)
    stream_format: Literal["audio", "sse"] = "audio"


@router.post("/audio/speech")
async def speech(request: Request, body: SpeechRequest) -> Response:
    if body.voice not in VOICES:
        raise APIError(400, f"unknown voice {body.voice[:64]!r}; use one of {sorted(VOICES)}", param="voice")
    job = _start_job(request)
    try:
        _charge(request, "tts_chars", len(body.input))
        return await _speech(request, body, job)
    except BaseException:
        job.release()
        raise


async def _speech(request: Request, body: SpeechRequest, job: Job) -> Response:
    """The speech response; ``job`` is released when its body has been sent (or abandoned)."""
    from hark.audio.codecs import CONTENT_TYPES, encode_stream

    tts = services_of(request).engines.tts
    splitter = SentenceSplitter()
    sentences = splitter.push(body.input) + splitter.flush()

    async def pcm() -> AsyncIterator[bytes]:
        # OpenAI's formats are 24 kHz (raw pcm by definition), whatever the voice's own rate.
        for sentence in sentences:
            resampler = PCM16Resampler(tts.sample_rate, SPEECH_RATE)
            if body.speed != 1.0:  # the time stretch needs the whole sentence
                audio = b"".join([chunk async for chunk in tts.synthesize(sentence)])
                audio = await asyncio.to_thread(change_speed, audio, tts.sample_rate, body.speed)
                yield resampler.process(audio) + resampler.process(b"", last=True)
                continue
            async for chunk in tts.synthesize(sentence):  # pieces as the engine has them
                if out := resampler.process(chunk):
                    yield out
            if tail := resampler.process(b"", last=True):
                yield tail

    # Start synthesising before answering, so an engine failure is a proper error status.
    stream = encode_stream(pcm(), body.response_format, SPEECH_RATE)
    try:
        first = await anext(stream, b"")
    except EngineError as exc:
        raise engine_error(exc, "speech synthesis") from exc

    async def audio_body() -> AsyncIterator[bytes]:
        try:
            yield first
            async for chunk in stream:
                yield chunk
        finally:
            job.release()

    if body.stream_format == "sse":

        async def events() -> AsyncIterator[bytes]:
            async for chunk in audio_body():
                if chunk:
                    event = {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()}
                    yield f"data: {json.dumps(event)}\n\n".encode()
            done = {
                "type": "speech.audio.done",
                "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
            }
            yield f"data: {json.dumps(done)}\n\n".encode()

        return StreamingResponse(
            events(), media_type="text/event-stream", background=BackgroundTask(job.release)
        )
    return StreamingResponse(
        audio_body(), media_type=CONTENT_TYPES[body.response_format], background=BackgroundTask(job.release)
    )


# -- transcription and translation ------------------------------------------------------


async def _read_upload(file: UploadFile, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise APIError(
            413, f"the file exceeds {limit / (1024 * 1024):g} MB", param="file", code="file_too_large"
        )
    return data


async def _transcribe(request: Request, file: UploadFile, language: str | None) -> Transcript:
    job = _start_job(request)
    try:
        return await _transcribe_job(request, file, language)
    finally:
        job.release()


async def _transcribe_job(request: Request, file: UploadFile, language: str | None) -> Transcript:
    limits = services_of(request).settings.security
    data = await _read_upload(file, limits.max_upload_bytes)
    try:
        audio = await asyncio.to_thread(
            decode_audio_file, data, STT_RATE, max_seconds=limits.max_upload_audio_s
        )
    except AudioTooLong as exc:
        raise APIError(413, str(exc), param="file", code="audio_too_long") from None
    except AudioFormatError as exc:
        raise APIError(400, str(exc), param="file", code="invalid_audio") from None
    _charge(request, "stt_audio_s", audio.size / STT_RATE)
    try:
        return await services_of(request).engines.stt.transcribe(audio, language=language)
    except EngineError as exc:
        raise engine_error(exc, "transcription") from exc


@router.post("/audio/transcriptions")
async def transcriptions(
    request: Request,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form(min_length=1, max_length=256)],
    language: Annotated[str | None, Form(max_length=16)] = None,
    prompt: Annotated[str | None, Form(max_length=4096)] = None,
    response_format: Annotated[TranscriptFormat, Form()] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
    stream: Annotated[bool, Form()] = False,
) -> Response:
    transcript = await _transcribe(request, file, language)
    if stream:

        async def events() -> AsyncIterator[bytes]:
            # One delta per word, then done: the shape of OpenAI's transcript stream events.
            words = transcript.text.split(" ")
            for i, word in enumerate(words):
                delta = word if i == 0 else " " + word
                yield f"data: {json.dumps({'type': 'transcript.text.delta', 'delta': delta})}\n\n".encode()
            done = {"type": "transcript.text.done", "text": transcript.text}
            yield f"data: {json.dumps(done)}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")
    return render_transcript(transcript, response_format, "transcribe")


@router.post("/audio/translations")
async def translations(
    request: Request,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form(min_length=1, max_length=256)],
    prompt: Annotated[str | None, Form(max_length=4096)] = None,
    response_format: Annotated[TranscriptFormat, Form()] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
) -> Response:
    # The bundled model is English-only (tiny.en), so its transcript already is the English text.
    transcript = await _transcribe(request, file, "en")
    return render_transcript(transcript, response_format, "translate")


# -- chat -------------------------------------------------------------------------------


@router.post("/chat/completions")
async def chat_completions(request: Request, body: ChatRequest) -> Response:
    llm = services_of(request).engines.llm
    if llm is None:
        raise APIError(
            503,
            "no language model is configured; set HARK_LLM_BASE_URL (or llm.providers)",
            type="server_error",
            code="llm_not_configured",
            headers={"Retry-After": "60"},
        )
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    stream = llm.stream(chat_messages(body), chat_options(body))
    try:
        first = await anext(stream, None)
    except EngineError as exc:
        raise engine_error(exc, "the language model") from exc

    async def chunks() -> AsyncIterator[str | ToolCall]:
        if first is not None:
            yield first
        async for chunk in stream:
            yield chunk

    if not body.stream:
        text: list[str] = []
        calls: list[ToolCall] = []
        try:
            async for chunk in chunks():
                (calls if isinstance(chunk, ToolCall) else text).append(chunk)  # type: ignore[arg-type]
        except EngineError as exc:
            raise engine_error(exc, "the language model") from exc
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
        if calls:
            message["tool_calls"] = [
                {k: v for k, v in tool_call_json(i, c).items() if k != "index"} for i, c in enumerate(calls)
            ]
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": body.model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
                ],
            }
        )

    def sse(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(data)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        yield sse({"role": "assistant", "content": ""})
        calls = 0
        try:
            async for chunk in chunks():
                if isinstance(chunk, ToolCall):
                    yield sse({"tool_calls": [tool_call_json(calls, chunk)]})
                    calls += 1
                else:
                    yield sse({"content": chunk})
        except EngineError as exc:
            error = {"error": {"message": f"the language model failed: {exc}", "type": "server_error"}}
            yield f"data: {json.dumps(error)}\n\n".encode()
            return
        yield sse({}, "tool_calls" if calls else "stop")
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


# -- models -----------------------------------------------------------------------------


@router.get("/models")
async def models(request: Request) -> JSONResponse:
    services = services_of(request)
    settings = services.settings
    created = int(services.started_at)
    ids: list[tuple[str, str]] = [(p.model or p.label, "llm") for p in settings.llm.chain()]
    ids += [(p.model or p.label, "stt") for p in settings.stt.providers]
    ids += [(p.model or p.label, "tts") for p in settings.tts.providers]
    seen: set[str] = set()
    data = []
    for model_id, stage in ids:
        if model_id not in seen:
            seen.add(model_id)
            data.append({"id": model_id, "object": "model", "created": created, "owned_by": f"hark:{stage}"})
    return JSONResponse({"object": "list", "data": data})
