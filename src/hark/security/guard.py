"""HandshakeGuard: an ASGI middleware that checks every WebSocket upgrade before the application
can accept it, and the API key on REST routes.

WebSocket, in this order (each refusal is an HTTP response when the server supports the ASGI
``websocket.http.response`` extension, as uvicorn does, else a close before the upgrade):

1. Origin not allowed → 403 ``origin_not_allowed`` (close 1008). Starlette's CORS middleware
   does not look at WebSocket upgrades, so without this any web page could drive a local hark
   from its visitor's browser.
2. Per client address rate limit → 429 with Retry-After (close 1013).
3. Session cap → 503 with Retry-After (close 1013).
4. Credentials (when API keys are configured) → 401 (close 4001). A browser (it sends Origin)
   that presents none is upgraded and must send ``{"type": "hark.auth", "token": ...}`` first,
   within ``auth_timeout_s``; otherwise it is closed with 4001 before the application sees it.
   Such a socket does not hold a session slot while it waits: it holds a place in a small
   pre-auth budget (``preauth_per_address`` per client address, ``preauth_total`` in all; 503
   ``preauth_limit`` beyond it) and takes a session slot only once authenticated (close 1013
   when none is left).
5. Per principal rate limit → 429 (close 1013).

Once the application has the socket, a client that sends nothing for ``idle_timeout_s`` while
nothing is sent to it either is closed (1000, ``idle timeout``): one policy for every endpoint.

REST under ``/v1/`` and ``/admin/``: per address and per key rate limits (429), and an API key
(401 with OpenAI's error body) when keys are configured; on ``/admin/`` the admin key is accepted
too (the admin routes still check it themselves).

The application sees the principal in ``scope["state"]["hark_principal"]`` (see
:func:`principal_of`), and neither the ``Authorization`` header nor the credential subprotocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import math
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hark.config import SecuritySettings, Settings
from hark.security.auth import (
    ANONYMOUS,
    AuthError,
    KeyRing,
    Principal,
    auth_enabled,
    auth_message_credential,
    bearer,
    presented_credential,
    strip_credentials,
    verify_credential,
)
from hark.security.budget import TenantBudget
from hark.security.limits import (
    MemoryRateLimiter,
    PreAuthBudget,
    PreAuthSlot,
    RateLimiter,
    SessionCap,
    SessionSlot,
    StoreRateLimiter,
    WindowCounter,
)
from hark.security.tokens import JtiStore, MemoryJtiStore, StoreJtiStore, TokenIssuer

log = logging.getLogger("hark.security")

WEBSOCKET_KINDS: dict[str, str] = {
    "/v1/realtime": "realtime",
    "/v1/tts/sessions": "tts",
    "/v1/meetings/stream": "meetings",
}
"""WebSocket paths and the session kind a token must be minted for. Upgrades on other paths are
checked the same way but accept API keys only."""
IN_BAND_AUTH: frozenset[str] = frozenset({"/twilio/stream"})
"""WebSockets whose clients cannot present a credential in the handshake (Twilio Media Streams):
origin, rate limits and the session cap apply, and the application checks a single-use token in
the first messages before any session starts."""
PROTECTED_HTTP_PREFIXES = ("/v1/", "/admin/")
TOKEN_HTTP: dict[str, str] = {"/v1/realtime/calls": "realtime"}
"""REST paths that also take a single-use session token of that kind (a browser's WebRTC offer)."""
PUBLIC_HTTP = frozenset({"/", "/health", "/ready", "/meeting"})

CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHORIZED = 4001
CLOSE_IDLE = 1000
"""Suggested for the idle timeout (with reason ``idle timeout``): a normal end, no reconnect."""
CLOSE_SLOW_CONSUMER = 1008
"""Suggested when the outbound budget says CLOSE (reason ``client too slow``)."""

STATE_KEY = "hark_principal"
IDLE_KEY = "hark_idle"

_denied: contextvars.ContextVar[bool] = contextvars.ContextVar("hark_ws_denied", default=False)


@dataclass
class Security:
    """What the guard and the token route share: one per process."""

    settings: SecuritySettings
    tokens: TokenIssuer
    limiter: RateLimiter
    cap: SessionCap
    keys: KeyRing
    admin_keys: KeyRing
    preauth: PreAuthBudget
    budget: TenantBudget

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: WindowCounter | None = None,
        jti_store: JtiStore | None = None,
        limiter: RateLimiter | None = None,
    ) -> Security:
        """In memory by default (one process). Pass the shared session store (Redis) as
        ``store`` to share rate limits and single use across instances."""
        security = settings.security
        secret = security.token_secret.get_secret_value() if security.token_secret else None
        keys = KeyRing.api_keys(security)
        if jti_store is None:
            jti_store = StoreJtiStore(store) if store is not None else MemoryJtiStore()
        if limiter is None:
            per_minute = security.rate_limit_per_minute
            limiter = (
                StoreRateLimiter(store, per_minute) if store is not None else MemoryRateLimiter(per_minute)
            )
        return cls(
            settings=security,
            tokens=TokenIssuer(secret, ttl_s=security.token_ttl_s, store=jti_store),
            limiter=limiter,
            cap=SessionCap(security.max_sessions),
            keys=keys,
            admin_keys=keys.with_entry("admin", "admin", settings.server.admin_key),
            preauth=PreAuthBudget(security.preauth_per_address, security.preauth_total),
            budget=TenantBudget.from_settings(security),
        )


def principal_of(scope: MutableMapping[str, Any]) -> Principal | None:
    """The principal the guard admitted this connection as (None: no guard in front)."""
    state = scope.get("state") or {}
    principal = state.get(STATE_KEY)
    return principal if isinstance(principal, Principal) else None


def owner_of(scope: MutableMapping[str, Any]) -> str:
    """The tenant that owns what this request creates: ``anonymous`` when auth is off."""
    principal = principal_of(scope)
    return principal.owner if principal is not None else ANONYMOUS.owner


# -- origins --------------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]``, lowercase, default port dropped; None for ``null`` or junk."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if not scheme or not host or parts.path not in ("", "/") or parts.query or parts.username:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """No Origin (not a browser): allowed. With an allow-list: only the origins on it (``*`` is
    any). Without one: only the page's own host, i.e. Origin's host[:port] equals Host."""
    if origin is None:
        return True
    if allowed:
        if "*" in allowed:
            return True
        if origin.strip() == "null":
            return "null" in allowed
        normal = normalize_origin(origin)
        return normal is not None and normal in {normalize_origin(a) for a in allowed}
    normal = normalize_origin(origin)
    if normal is None or not host:
        return False
    scheme, _, netloc = normal.partition("://")
    host_origin = normalize_origin(f"{scheme}://{host.strip()}")
    return host_origin is not None and host_origin.partition("://")[2] == netloc


# -- helpers --------------------------------------------------------------------------------


def route_path(scope: Scope) -> str:
    path: str = scope.get("path", "/")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def error_type(status: int) -> str:
    """OpenAI's ``error.type`` for a status: ``requests`` for its rate limits."""
    return {429: "requests", 503: "server_error"}.get(status, "invalid_request_error")


def error_body(message: str, type_: str, code: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


def _retry_after(seconds: float) -> list[tuple[bytes, bytes]]:
    return [(b"retry-after", str(max(1, math.ceil(seconds))).encode())]


def install_denial_log_filter() -> None:
    """uvicorn's websockets-sansio protocol logs "ASGI callable returned without completing
    handshake." at ERROR after every denial response (Kludex/uvicorn PR #3138, open). This filter
    drops that record only when the guard itself just sent a denial on that connection."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialLogFilter) for f in logger.filters):
        logger.addFilter(_DenialLogFilter())


class _DenialLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_denied.get() and record.getMessage().startswith("ASGI callable returned without"))


# -- the middleware -------------------------------------------------------------------------


class HandshakeGuard:
    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        security: Security | None = None,
        *,
        auth_timeout_s: float | None = None,
        first_message_auth: bool = True,
    ) -> None:
        self.app = app
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
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http" and self._protected_http(scope):
            await self._http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- REST -----------------------------------------------------------------------------

    @staticmethod
    def _protected_http(scope: Scope) -> bool:
        path = route_path(scope)
        if path in PUBLIC_HTTP or path.startswith("/static/") or scope.get("method") == "OPTIONS":
            return False
        return path in ("/v1", "/admin") or path.startswith(PROTECTED_HTTP_PREFIXES)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.security.limiter
        wait = await limiter.hit("ip:" + client_address(scope))
        if wait:
            return await self._http_error(
                send, 429, "too many requests; slow down", "rate_limit_exceeded", wait
            )
        if self.auth:
            path = route_path(scope)
            admin = path == "/admin" or path.startswith("/admin/")
            ring = self.security.admin_keys if admin else self.security.keys
            try:
                credential = bearer(Headers(scope=scope))
                if credential is None:
                    log.info(
                        "request refused", extra={"path": path, "status": 401, "reason": "missing_api_key"}
                    )
                    return await self._http_error(
                        send,
                        401,
                        "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                        "missing_api_key",
                    )
                kind = TOKEN_HTTP.get(path)
                tokens = self.security.tokens if kind is not None else None
                principal = await verify_credential(credential, keys=ring, tokens=tokens, kind=kind)
            except AuthError as exc:
                log.info("request refused", extra={"path": path, "status": 401, "reason": exc.code})
                return await self._http_error(send, 401, "Incorrect API key provided.", "invalid_api_key")
            wait = await limiter.hit(principal.id)
            if wait:
                return await self._http_error(
                    send, 429, "too many requests for this key; slow down", "rate_limit_exceeded", wait
                )
            scope = {**scope, "state": {**(scope.get("state") or {}), STATE_KEY: principal}}
        await self.app(scope, receive, send)

    @staticmethod
    async def _http_error(
        send: Send, status: int, message: str, code: str, retry_after: float | None = None
    ) -> None:
        body = error_body(message, error_type(status), code)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        if retry_after is not None:
            headers += _retry_after(retry_after)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # -- WebSocket ------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        kind = WEBSOCKET_KINDS.get(path.rstrip("/") or "/")
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        security = self.security

        if not origin_allowed(origin, headers.get("host"), security.settings.allowed_origins):
            log.info("websocket refused", extra={"path": path, "status": 403, "reason": "origin_not_allowed"})
            return await self._deny(
                scope, send, 403, "this origin may not open WebSockets", "origin_not_allowed"
            )
        wait = await security.limiter.hit("ip:" + client_address(scope))
        if wait:
            log.debug("websocket refused", extra={"path": path, "status": 429, "reason": "rate_limited"})
            return await self._deny(
                scope, send, 429, "too many new sessions; slow down", "rate_limit_exceeded", wait
            )
        if self._waits_for_first_message(headers, scope, origin):
            preauth = security.preauth.acquire(client_address(scope))
            if preauth is None:
                log.info("websocket refused", extra={"path": path, "status": 503, "reason": "preauth_limit"})
                return await self._deny(
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
            return await self._deny(
                scope, send, 503, "the server is at its session limit", "server_busy", 1.0
            )
        try:
            principal: Principal | None = ANONYMOUS
            if self.auth and path not in IN_BAND_AUTH:
                try:
                    principal = await self._credential(headers, scope, kind)
                except AuthError as exc:
                    status = 503 if exc.code == "token_store_unavailable" else 401
                    log.info("websocket refused", extra={"path": path, "status": status, "reason": exc.code})
                    return await self._deny(
                        scope, send, status, exc.reason, exc.code, 1.0 if status == 503 else None
                    )
                if principal is None and not (self.first_message_auth and origin is not None):
                    log.info("websocket refused", extra={"path": path, "status": 401, "reason": "missing"})
                    return await self._deny(
                        scope,
                        send,
                        401,
                        "authentication required: an API key or session token",
                        "missing_credentials",
                    )
            if principal is None:  # not reached: see _waits_for_first_message
                return await self._deny(scope, send, 401, "authentication required", "missing_credentials")
            if principal.kind != "anonymous":
                wait = await security.limiter.hit(principal.id)
                if wait:
                    return await self._deny(
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

    async def _deny(
        self, scope: Scope, send: Send, status: int, message: str, code: str, retry_after: float | None = None
    ) -> None:
        _denied.set(True)
        if "websocket.http.response" in (scope.get("extensions") or {}):
            body = error_body(message, error_type(status), code)
            headers = [(b"content-type", b"application/json")]
            if status == 401:
                headers.append((b"www-authenticate", b"Bearer"))
            if retry_after is not None:
                headers += _retry_after(retry_after)
            await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        else:
            close = {401: CLOSE_UNAUTHORIZED, 429: CLOSE_TRY_AGAIN, 503: CLOSE_TRY_AGAIN}.get(
                status, CLOSE_POLICY
            )
            await send({"type": "websocket.close", "code": close, "reason": code})

    def _inner_scope(self, scope: Scope, principal: Principal) -> Scope:
        subprotocols = strip_credentials(scope.get("subprotocols") or [])
        headers = [
            (name, value)
            for name, value in scope.get("headers") or []
            if name.lower() not in (b"authorization", b"sec-websocket-protocol")
        ]
        if subprotocols:
            headers.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode("latin-1")))
        state = {**(scope.get("state") or {}), STATE_KEY: principal}
        return {**scope, "subprotocols": subprotocols, "headers": headers, "state": state}

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


class IdleWatch:
    """Reads from an ASGI ``receive`` with a deadline that any activity (a message either way,
    see :meth:`touch`) pushes back. The read in flight is kept, never cancelled, across waits.
    While the application holds it (:func:`hold_idle`: say, a meeting being processed after
    ``stop``, with nothing to send until ``final``) the socket is not idle."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.last = time.monotonic()
        self.holds = 0
        self._pending: asyncio.Task[Message] | None = None

    def touch(self) -> None:
        self.last = time.monotonic()

    async def receive(self, receive: Receive) -> Message | None:
        """The next message, or None once ``timeout_s`` passed without activity."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(receive())
        while True:
            remaining = self.last + self.timeout_s - time.monotonic()
            if remaining <= 0 and self.holds:
                self.touch()
                continue
            if remaining <= 0:
                return None
            done, _ = await asyncio.wait({self._pending}, timeout=remaining)
            if done:
                task, self._pending = self._pending, None
                self.touch()
                return task.result()

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


@contextlib.contextmanager
def hold_idle(scope: MutableMapping[str, Any]) -> Iterator[None]:
    """While inside, the guard's idle timeout does not close this WebSocket (no-op without the
    guard in front)."""
    watch = (scope.get("state") or {}).get(IDLE_KEY)
    if not isinstance(watch, IdleWatch):
        yield
        return
    watch.holds += 1
    try:
        yield
    finally:
        watch.holds -= 1
        watch.touch()
