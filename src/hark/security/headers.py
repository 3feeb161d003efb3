"""Response headers that keep hark's pages from being framed, sniffed or fed foreign scripts.

Every HTTP response gets ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and
``Referrer-Policy: no-referrer``; HTML pages (the voice and meeting pages) also get a Content
Security Policy that allows only hark's own scripts, styles and WebSocket, and no framing
(``frame-ancestors 'none'``). The API docs pages (``/docs``, ``/redoc``, off by default beyond
loopback) load their scripts from a CDN, so they keep FastAPI's own headers without the CSP.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; media-src 'self' blob:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Inline ``style`` attributes are used by the pages' SVG sprites; scripts are files only."""
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
COMMON = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        docs = scope.get("path", "") in DOCS_PATHS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                for name, value in COMMON:
                    headers.setdefault(name, value)
                if not docs and headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("content-security-policy", PAGE_CSP)
            await send(message)

        await self.app(scope, receive, with_headers)
