"""HandshakeGuard: an ASGI middleware that checks every WebSocket upgrade before the application
can accept it, and the API key on REST routes, as each route declares (:mod:`hark.security.access`).

WebSocket, in this order (each refusal is an HTTP response when the server supports the ASGI
``websocket.http.response`` extension, as uvicorn does, else a close before the upgrade):

1. Origin not allowed → 403 ``origin_not_allowed`` (close 1008); see :mod:`hark.security.origins`.
2. Per client address rate limit → 429 with Retry-After (close 1013).
3. Session cap → 503 with Retry-After (close 1013).
4. Credentials (when API keys are configured, and the route is not public or ``in_band``) → 401
   (close 4001). A browser (it sends Origin) that presents none is upgraded and must send
   ``{"type": "hark.auth", "token": ...}`` first, within ``auth_timeout_s``; otherwise it is
   closed with 4001 before the application sees it. Such a socket does not hold a session slot
   while it waits: it holds a place in a small pre-auth budget (``preauth_per_address`` per client
   address, ``preauth_total`` in all; 503 ``preauth_limit`` beyond it) and takes a session slot
   only once authenticated (close 1013 when none is left).
5. Per principal rate limit → 429 (close 1013).

Once the application has the socket, a client that sends nothing for ``idle_timeout_s`` while
nothing is sent to it either is closed (1000, ``idle timeout``): one policy for every endpoint.

REST on every route not declared public: per address and per key rate limits (429), and an API
key (401 with OpenAI's error body) when keys are configured; on routes declared ``admin`` the
admin key is accepted too (the admin routes still check it themselves).

The application sees the principal in ``scope["state"]["hark_principal"]`` (see
:func:`hark.security.scope.principal_of`), and neither the ``Authorization`` header nor the
credential subprotocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hark.config import Settings
from hark.security.access import Access, access_for
from hark.security.auth import (
    ANONYMOUS,
    AuthError,
    Principal,
    auth_enabled,
    auth_message_credential,
    bearer,
    presented_credential,
    strip_credentials,
    verify_credential,
)
from hark.security.close_codes import CLOSE_IDLE, CLOSE_POLICY, CLOSE_TRY_AGAIN, CLOSE_UNAUTHORIZED
from hark.security.context import Security
from hark.security.idle import IDLE_KEY, IdleWatch
from hark.security.origins import origin_allowed
from hark.security.refusals import refuse_http, refuse_upgrade
from hark.security.scope import client_address, route_path, with_principal
from hark.security.slots import PreAuthSlot, SessionSlot

log = logging.getLogger("hark.security")


class HandshakeGuard:
    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        security: Security | None = None,
        *,
        routes: Iterable[BaseRoute],
        auth_timeout_s: float | None = None,
        first_message_auth: bool = True,
    ) -> None:
        self.app = app
        self.routes = routes
        """The application's routes, whose declared access the guard enforces (a live list: routes
        added after the guard was built count too)."""
        self.settings = settings
        self.security = security if security is not None else Security.from_settings(settings)
        self.auth_timeout_s = (
            auth_timeout_s if auth_timeout_s is not None else settings.security.auth_timeout_s
        )
        self.idle_timeout_s = settings.security.idle_timeout_s
        self.first_message_auth = first_message_auth
        self.auth = auth_enabled(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, access_for(self.routes, scope))
        elif scope["type"] == "http" and scope.get("method") != "OPTIONS":
            access = access_for(self.routes, scope)
            if access.public:
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send, access)
        else:
            await self.app(scope, receive, send)

    # -- REST -----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send, access: Access) -> None:
        limiter = self.security.limiter
        wait = await limiter.hit("ip:" + client_address(scope))
        if wait:
            return await refuse_http(send, 429, "too many requests; slow down", "rate_limit_exceeded", wait)
        if self.auth:
            path = route_path(scope)
            ring = self.security.admin_keys if access.level == "admin" else self.security.keys
            try:
                credential = bearer(Headers(scope=scope))
                if credential is None:
                    log.info(
                        "request refused", extra={"path": path, "status": 401, "reason": "missing_api_key"}
                    )
                    return await refuse_http(
                        send,
                        401,
                        "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                        "missing_api_key",
                    )
                # A route that declares a session-token kind (the WebRTC offer) also takes a
                # single-use client secret minted for it; every other REST route an API key only.
                kind = access.token_kind
                tokens = self.security.tokens if kind is not None else None
                principal = await verify_credential(credential, keys=ring, tokens=tokens, kind=kind)
            except AuthError as exc:
                log.info("request refused", extra={"path": path, "status": 401, "reason": exc.code})
                return await refuse_http(send, 401, "Incorrect API key provided.", "invalid_api_key")
            wait = await limiter.hit(principal.id)
            if wait:
                return await refuse_http(
                    send, 429, "too many requests for this key; slow down", "rate_limit_exceeded", wait
                )
            scope = with_principal(scope, principal)
        await self.app(scope, receive, send)

    # -- WebSocket ------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, access: Access) -> None:
        path = route_path(scope)
        kind = access.token_kind
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        security = self.security

        if not origin_allowed(origin, headers.get("host"), security.settings.allowed_origins):
            log.info("websocket refused", extra={"path": path, "status": 403, "reason": "origin_not_allowed"})
            return await refuse_upgrade(
                scope, send, 403, "this origin may not open WebSockets", "origin_not_allowed"
            )
        wait = await security.limiter.hit("ip:" + client_address(scope))
        if wait:
            log.debug("websocket refused", extra={"path": path, "status": 429, "reason": "rate_limited"})
            return await refuse_upgrade(
                scope, send, 429, "too many new sessions; slow down", "rate_limit_exceeded", wait
            )
        if self._waits_for_first_message(headers, scope, origin):
            preauth = security.preauth.acquire(client_address(scope))
            if preauth is None:
                log.info("websocket refused", extra={"path": path, "status": 503, "reason": "preauth_limit"})
                return await refuse_upgrade(
                    scope, send, 503, "too many connections waiting to authenticate", "preauth_limit", 1.0
                )
            try:
                await self._first_message(scope, receive, send, kind, preauth)
            finally:
                preauth.release()
            return
        slot = security.cap.acquire()
        if slot is None:
            log.info("websocket refused", extra={"path": path, "status": 503, "reason": "session_cap"})
            return await refuse_upgrade(
                scope, send, 503, "the server is at its session limit", "server_busy", 1.0
            )
        try:
            principal: Principal | None = ANONYMOUS
            if self.auth and access.level in ("api_key", "admin"):
                try:
                    principal = await self._credential(headers, scope, kind)
                except AuthError as exc:
                    status = 503 if exc.code == "token_store_unavailable" else 401
                    log.info("websocket refused", extra={"path": path, "status": status, "reason": exc.code})
                    return await refuse_upgrade(
                        scope, send, status, exc.reason, exc.code, 1.0 if status == 503 else None
                    )
                if principal is None and not (self.first_message_auth and origin is not None):
                    log.info("websocket refused", extra={"path": path, "status": 401, "reason": "missing"})
                    return await refuse_upgrade(
                        scope,
                        send,
                        401,
                        "authentication required: an API key or session token",
                        "missing_credentials",
                    )
            if principal is None:  # not reached: see _waits_for_first_message
                return await refuse_upgrade(
                    scope, send, 401, "authentication required", "missing_credentials"
                )
            if principal.kind != "anonymous":
                wait = await security.limiter.hit(principal.id)
                if wait:
                    return await refuse_upgrade(
                        scope, send, 429, "too many sessions for this key", "rate_limit_exceeded", wait
                    )
            await self._run(scope, receive, send, principal, slot)
        finally:
            slot.release()

    def _waits_for_first_message(self, headers: Headers, scope: Scope, origin: str | None) -> bool:
        """A browser upgrade with no credential, to be authenticated by its first message."""
        if not (self.auth and self.first_message_auth and origin is not None):
            return False
        try:
            return presented_credential(headers, scope.get("subprotocols") or []) is None
        except AuthError:
            return False  # a malformed Authorization header: refused on the usual path

    async def _credential(self, headers: Headers, scope: Scope, kind: str | None) -> Principal | None:
        credential = presented_credential(headers, scope.get("subprotocols") or [])
        if credential is None:
            return None
        return await verify_credential(
            credential, keys=self.security.keys, tokens=self.security.tokens, kind=kind
        )

    def _inner_scope(self, scope: Scope, principal: Principal) -> Scope:
        subprotocols = strip_credentials(scope.get("subprotocols") or [])
        headers = [
            (name, value)
            for name, value in scope.get("headers") or []
            if name.lower() not in (b"authorization", b"sec-websocket-protocol")
        ]
        if subprotocols:
            headers.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode("latin-1")))
        return with_principal({**scope, "subprotocols": subprotocols, "headers": headers}, principal)

    async def _run(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        principal: Principal,
        slot: SessionSlot,
        *,
        accepted: bool = False,
    ) -> None:
        """The application, with the slot released as soon as the connection ends. When the guard
        has already accepted (first-message auth), the app's own accept is absorbed. Once the
        socket is open, ``idle_timeout_s`` with no message either way closes it."""
        replay_connect = accepted
        idle = IdleWatch(self.idle_timeout_s)
        open_ = accepted
        idled_out = False

        async def guarded_receive() -> Message:
            nonlocal replay_connect, idled_out
            if idled_out:
                return {"type": "websocket.disconnect", "code": CLOSE_IDLE, "reason": "idle timeout"}
            if replay_connect:
                replay_connect = False
                return {"type": "websocket.connect"}
            message = await idle.receive(receive) if open_ else await receive()
            if message is None:
                log.info("websocket closed", extra={"path": route_path(scope), "reason": "idle_timeout"})
                idled_out = True
                slot.release()
                with contextlib.suppress(Exception):
                    await send({"type": "websocket.close", "code": CLOSE_IDLE, "reason": "idle timeout"})
                return {"type": "websocket.disconnect", "code": CLOSE_IDLE, "reason": "idle timeout"}
            if message["type"] == "websocket.disconnect":
                slot.release()
            return message

        pending_accept = accepted
        swallow_body = False

        async def guarded_send(message: Message) -> None:
            nonlocal pending_accept, swallow_body, open_
            kind = message["type"]
            if idled_out:
                return  # the guard closed the socket; what the application still sends is dropped
            idle.touch()
            if kind == "websocket.accept":
                open_ = True
            if pending_accept:
                if kind == "websocket.accept":
                    pending_accept = False
                    return
                if kind == "websocket.http.response.start":
                    pending_accept, swallow_body = False, True
                    message = {"type": "websocket.close", "code": CLOSE_POLICY, "reason": "refused"}
                elif kind == "websocket.close":
                    pending_accept = False
            elif swallow_body and kind == "websocket.http.response.body":
                return
            if message["type"] == "websocket.close":
                slot.release()
            await send(message)

        inner = self._inner_scope(scope, principal)
        inner["state"][IDLE_KEY] = idle
        try:
            await self.app(inner, guarded_receive, guarded_send)
        finally:
            idle.cancel()

    async def _first_message(
        self, scope: Scope, receive: Receive, send: Send, kind: str | None, preauth: PreAuthSlot
    ) -> None:
        path = route_path(scope)
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        offered = scope.get("subprotocols") or []
        await send({"type": "websocket.accept", "subprotocol": "realtime" if "realtime" in offered else None})

        async def refuse(code: int, reason: str) -> None:
            log.info(
                "websocket closed before the session", extra={"path": path, "code": code, "reason": reason}
            )
            await send({"type": "websocket.close", "code": code, "reason": reason})

        try:
            async with asyncio.timeout(self.auth_timeout_s):
                message = await receive()
        except TimeoutError:
            return await refuse(CLOSE_UNAUTHORIZED, "authentication timeout")
        if message["type"] != "websocket.receive":
            return
        credential = auth_message_credential(message.get("text"))
        if credential is None:
            return await refuse(
                CLOSE_UNAUTHORIZED, 'authentication required: send {"type": "hark.auth", ...} first'
            )
        try:
            principal = await verify_credential(
                credential, keys=self.security.keys, tokens=self.security.tokens, kind=kind
            )
        except AuthError as exc:
            return await refuse(CLOSE_UNAUTHORIZED, exc.code)
        if await self.security.limiter.hit(principal.id):
            return await refuse(CLOSE_TRY_AGAIN, "rate_limit_exceeded")
        # Authenticated: the pre-auth place is given back for a session slot.
        preauth.release()
        slot = self.security.cap.acquire()
        if slot is None:
            return await refuse(CLOSE_TRY_AGAIN, "server_busy")
        try:
            await self._run(scope, receive, send, principal, slot, accepted=True)
        finally:
            slot.release()
