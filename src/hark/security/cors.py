"""CORS for the WebRTC offer route, so a web app on another origin can make calls.

A browser app served from its own origin (the Next.js example: its server mints the client
secret, the browser POSTs the SDP offer to hark) needs hark to answer CORS on
``/v1/realtime/calls``: the preflight (``OPTIONS`` with ``Access-Control-Request-Method``) and
the call itself, whose ``Location`` header names the call. Only origins on
``security.allowed_origins`` get an answer (``*`` there is any origin); without an allow-list
hark serves its own page only, which needs no CORS. Nothing else is opened: the WebSocket
routes check Origin themselves and REST routes stay same-origin.

Outermost, before the guard: a preflight carries no credentials and must not be refused as
unauthenticated; it only ever answers headers, never reaches a route.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hark.security.origins import origin_allowed

CORS_PATH = "/v1/realtime/calls"
ALLOW_METHODS = "POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = "Location"
MAX_AGE_S = "600"


def covered(path: str) -> bool:
    return path == CORS_PATH or path.startswith(CORS_PATH + "/")


class CallsCors:
    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        self.app = app
        self.allowed = list(allowed_origins)

    def _allowed(self, origin: str | None) -> bool:
        # Only through the allow-list: with none, same-origin pages need no CORS at all.
        return origin is not None and bool(self.allowed) and origin_allowed(origin, None, self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not covered(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if not self._allowed(origin):
            await self.app(scope, receive, send)
            return
        assert origin is not None
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": MAX_AGE_S,
                    "Vary": "Origin",
                },
            )
            await preflight(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = origin
                out["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)
