"""BodyLimit: request bodies are limited while they are read, never stored first.

A declared ``Content-Length`` over the route's limit is answered 413 before a byte of the body
is read. A body without one (chunked) is counted as it arrives; the read that passes the limit
fails, whatever the application was doing with the body is abandoned, and the client gets 413.
So a multipart upload spools at most the limit to a temporary file, never the whole body.

Limits are per route: the audio upload routes take ``security.max_upload_bytes`` plus room for
the multipart framing, every other route ``security.max_body_bytes``.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hark.config import SecuritySettings

log = logging.getLogger("hark.security")

UPLOAD_ROUTES = frozenset({"/v1/audio/transcriptions", "/v1/audio/translations"})
MULTIPART_OVERHEAD = 64 * 1024
"""Room for the form's other fields and part headers around the file."""


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds {limit} bytes")
        self.limit = limit


def limit_for(path: str, settings: SecuritySettings) -> int:
    if path.rstrip("/") in UPLOAD_ROUTES:
        return settings.max_upload_bytes + MULTIPART_OVERHEAD
    return settings.max_body_bytes


class BodyLimit:
    def __init__(self, app: ASGIApp, settings: SecuritySettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path: str = scope.get("path", "/")
        limit = limit_for(path, self.settings)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            log.info("request refused", extra={"path": path, "status": 413, "reason": "body_too_large"})
            return await _refuse(send, limit)
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # Whatever the application answers (400 for a body it could not parse, 500 ...)
                # the client's problem is the size.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _refuse(send, limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
            if not started:
                await _refuse(send, limit)
            log.info("request refused", extra={"path": path, "status": 413, "reason": "body_too_large"})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    message = f"the request body is larger than the {limit} bytes this route accepts"
    body = json.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "request_too_large",
            }
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
