"""OpenAI's wire shapes, with no app state and no sockets: the error body and its handlers,
engine and budget errors as API errors, transcript formats, chat requests and tool calls."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from hark.engines.base import ChatMessage, LLMOptions, ToolCall, ToolSpec, Transcript
from hark.errors import EngineError, EngineUnavailable
from hark.security.budget import BudgetExceeded


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers


def error_response(error: APIError) -> JSONResponse:
    body = {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"][1:]) or None
        return error_response(APIError(400, f"{param or 'request'}: {first['msg']}", param=param))


def engine_error(exc: EngineError, what: str) -> APIError:
    retry_after = exc.retry_after if exc.retry_after is not None else 1.0
    status = 503 if isinstance(exc, EngineUnavailable) or exc.retryable else 502
    return APIError(
        status,
        f"{what} failed: {exc}",
        type="server_error",
        code="engine_unavailable" if status == 503 else "engine_error",
        headers={"Retry-After": str(max(1, round(retry_after)))} if status == 503 else None,
    )


def budget_error(exc: BudgetExceeded) -> APIError:
    return APIError(
        429,
        str(exc),
        type="requests",
        code=exc.code,
        headers={"Retry-After": str(max(1, round(exc.retry_after)))},
    )


# -- transcripts ----------------------------------------------------------------------

TranscriptFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]


def _timestamp(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _segments(transcript: Transcript) -> list[dict[str, Any]]:
    return [{"id": 0, "start": 0.0, "end": round(transcript.duration_s, 3), "text": transcript.text}]


def render_transcript(transcript: Transcript, fmt: TranscriptFormat, task: str) -> Response:
    segments = _segments(transcript)
    if fmt == "text":
        return PlainTextResponse(transcript.text + "\n")
    if fmt in ("srt", "vtt"):
        separator = "," if fmt == "srt" else "."
        blocks = [
            (f"{i + 1}\n" if fmt == "srt" else "")
            + f"{_timestamp(s['start'], separator)} --> {_timestamp(s['end'], separator)}\n{s['text']}\n"
            for i, s in enumerate(segments)
        ]
        text = ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(blocks)
        return PlainTextResponse(text, media_type="text/vtt" if fmt == "vtt" else "application/x-subrip")
    if fmt == "verbose_json":
        return JSONResponse(
            {
                "task": task,
                "language": transcript.language or "en",
                "duration": round(transcript.duration_s, 3),
                "text": transcript.text,
                "segments": segments,
            }
        )
    return JSONResponse(
        {"text": transcript.text, "usage": {"type": "duration", "seconds": round(transcript.duration_s)}}
    )


# -- chat ----------------------------------------------------------------------------


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=256)
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=1000)
    stream: bool = False
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=131_072)
    max_completion_tokens: int | None = Field(None, ge=1, le=131_072)
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    response_format: dict[str, Any] | None = None


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    return ""


def chat_messages(body: ChatRequest) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for index, m in enumerate(body.messages):
        role = m.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise APIError(
                400,
                f"messages[{index}].role must be system, user, assistant or tool",
                param=f"messages.{index}.role",
            )
        calls = tuple(
            ToolCall(
                c.get("id", ""),
                c.get("function", {}).get("name", ""),
                c.get("function", {}).get("arguments", "{}"),
            )
            for c in m.get("tool_calls") or []
            if isinstance(c, dict)
        )
        out.append(
            ChatMessage(
                role, _content(m.get("content")), tool_calls=calls, tool_call_id=m.get("tool_call_id")
            )
        )
    return out


def chat_options(body: ChatRequest) -> LLMOptions:
    tools = tuple(
        ToolSpec(
            f["name"], f.get("description", ""), f.get("parameters") or {"type": "object", "properties": {}}
        )
        for t in body.tools or []
        if isinstance(f := t.get("function"), dict) and isinstance(f.get("name"), str)
    )
    schema = None
    if body.response_format and body.response_format.get("type") == "json_schema":
        schema = (body.response_format.get("json_schema") or {}).get("schema")
    return LLMOptions(
        tools=tools,
        json_schema=schema,
        temperature=body.temperature,
        max_tokens=body.max_completion_tokens or body.max_tokens,
    )


def tool_call_json(index: int, call: ToolCall) -> dict[str, Any]:
    return {
        "index": index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
