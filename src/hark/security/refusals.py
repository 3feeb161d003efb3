"""What a refused request or upgrade is answered with: OpenAI's error body, 401's
``WWW-Authenticate``, ``Retry-After``; a close code where the server cannot send HTTP."""

from __future__ import annotations

import json
import math

from starlette.types import Scope, Send

from hark.security.close_codes import CLOSE_FOR_STATUS, CLOSE_POLICY
from hark.security.denial_log import mark_denied


def error_type(status: int) -> str:
    """OpenAI's ``error.type`` for a status: ``requests`` for its rate limits."""
    return {429: "requests", 503: "server_error"}.get(status, "invalid_request_error")


def error_body(message: str, type_: str, code: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


def _headers(status: int, retry_after: float | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    return headers


async def refuse_http(
    send: Send, status: int, message: str, code: str, retry_after: float | None = None
) -> None:
    body = error_body(message, error_type(status), code)
    headers = _headers(status, retry_after)
    headers.insert(1, (b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def refuse_upgrade(
    scope: Scope, send: Send, status: int, message: str, code: str, retry_after: float | None = None
) -> None:
    """An HTTP response when the server supports the ASGI ``websocket.http.response`` extension
    (uvicorn does), else a close before the upgrade."""
    mark_denied()
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = error_body(message, error_type(status), code)
        headers = _headers(status, retry_after)
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        close = CLOSE_FOR_STATUS.get(status, CLOSE_POLICY)
        await send({"type": "websocket.close", "code": close, "reason": code})
