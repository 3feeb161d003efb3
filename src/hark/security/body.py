"""BodyLimit: request bodies are limited while they are read, never stored first.

A declared ``Content-Length`` over the route's limit is answered 413 before a byte of the body
is read. A body without one (chunked) is counted as it arrives; the read that passes the limit
fails, whatever the application was doing with the body is abandoned, and the client gets 413.
So a multipart upload spools at most the limit to a temporary file, never the whole body.

Limits are per route: the audio upload routes take ``security.max_upload_bytes`` plus room for
the multipart framing, every other route ``security.max_body_bytes``.

A body that stops arriving (more than ``server.body_timeout_s`` between two pieces of it) is
answered 408, so a slow-body client cannot hold a request open either.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hark.config import SecuritySettings, Settings

log = logging.getLogger("hark.security")

UPLOAD_ROUTES = frozenset({"/v1/audio/transcriptions", "/v1/audio/translations"})
MULTIPART_OVERHEAD = 64 * 1024
"""Room for the form's other fields and part headers around the file."""


class BodyRefused(Exception):
    """The body broke a bound: ``status`` (413 or 408) and the error body's ``code``/``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def too_large(limit: int) -> BodyRefused:
    return BodyRefused(
        413, "request_too_large", f"the request body is larger than the {limit} bytes this route accepts"
    )


def limit_for(path: str, settings: SecuritySettings) -> int:
    if path.rstrip("/") in UPLOAD_ROUTES:
        return settings.max_upload_bytes + MULTIPART_OVERHEAD
    return settings.max_body_bytes


class BodyLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings.security
        self.body_timeout_s = settings.server.body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path: str = scope.get("path", "/")
        limit = limit_for(path, self.settings)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            log.info("request refused", extra={"path": path, "status": 413, "reason": "body_too_large"})
            return await _refuse(send, too_large(limit))
        received = 0
        body_done = False
        refused: BodyRefused | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done, refused
            if body_done:  # after the body: a wait for the disconnect, as long as it takes
                return await receive()
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    message = await receive()
            except TimeoutError:
                refused = BodyRefused(408, "request_timeout", "the request body stopped arriving")
                raise refused from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = too_large(limit)
                    raise refused
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None:
                # Whatever the application answers (400 for a body it could not parse, 500 ...)
                # the client's problem is the size or the wait.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _refuse(send, refused)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if refused is None:
                raise
            if not started:
                await _refuse(send, refused)
        if refused is not None:
            log.info(
                "request refused", extra={"path": path, "status": refused.status, "reason": refused.code}
            )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, refused: BodyRefused) -> None:
    body = json.dumps(
        {
            "error": {
                "message": refused.message,
                "type": "invalid_request_error",
                "param": None,
                "code": refused.code,
            }
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
