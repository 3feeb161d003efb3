"""Short-lived, single-use session tokens for browsers (HS256 JWTs), and the route that mints them.

A browser cannot hold an API key, so the application's own backend (which can) asks hark for a
token with ``POST /v1/realtime/client_secrets`` and hands it to the page. The token:

- is an HS256 JWT carrying ``iss``, ``sub`` (its binding: ``<kind>:<session id>``, e.g.
  ``realtime:sess_...``), ``jti``, ``iat``, ``nbf`` and ``exp``;
- is verified with the algorithm pinned to HS256 (``alg=none``, HS512, RS256 ... are refused);
- opens one WebSocket of its kind, once: its ``jti`` is claimed in a :class:`JtiStore` until it
  expires, so a replay is refused even within its lifetime.

Tokens and keys are never logged and never put in URLs.
"""

from __future__ import annotations

import heapq
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hark.errors import ConfigError, HarkError
from hark.security.access import API_KEY
from hark.security.rate import WindowCounter

ALGORITHM = "HS256"
ISSUER = "hark"
MIN_SECRET_BYTES = 32
"""HS256 keys shorter than the hash output are weak (RFC 7518 §3.2); PyJWT warns about them."""

Kind = Literal["realtime", "tts", "meetings"]
KINDS: tuple[str, ...] = ("realtime", "tts", "meetings", "twilio")
"""``twilio`` tokens are minted by the phone webhook only (bound to the call), never by the route."""

TokenCode = Literal[
    "token_malformed",
    "token_algorithm_not_allowed",
    "token_invalid_signature",
    "token_expired",
    "token_not_yet_valid",
    "token_missing_claim",
    "token_wrong_issuer",
    "token_wrong_session",
    "token_reused",
    "token_store_unavailable",
]


class TokenError(Exception):
    """A session token was refused. ``code`` is stable; ``str(exc)`` is a short, safe reason."""

    def __init__(self, code: TokenCode, reason: str) -> None:
        super().__init__(reason)
        self.code: TokenCode = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claims:
    jti: str
    sub: str
    kind: str
    session_id: str
    issued_at: float
    not_before: float
    expires_at: float
    tenant: str = ""
    """The tenant of the key that minted the token (claim ``ten``); empty for tokens minted
    without one (auth off)."""


@dataclass(frozen=True, slots=True)
class MintedToken:
    value: str
    expires_at: int
    jti: str
    scope: str

    @property
    def session_id(self) -> str:
        return self.scope.partition(":")[2]

    def __repr__(self) -> str:  # never show the token itself
        return f"MintedToken(jti={self.jti!r}, scope={self.scope!r}, expires_at={self.expires_at})"


def new_session_id() -> str:
    return f"sess_{uuid.uuid4().hex[:20]}"


def scope_for(kind: str, session_id: str | None = None) -> str:
    """The binding a token carries in ``sub``: ``<kind>:<session id>`` (a fresh id by default)."""
    if kind not in KINDS:
        raise ValueError(f"unknown session kind {kind!r}; expected one of {', '.join(KINDS)}")
    return f"{kind}:{session_id or new_session_id()}"


def looks_like_jwt(value: str) -> bool:
    """Three dot-separated parts (the signature may be empty, as in a forged ``alg=none`` token)."""
    parts = value.split(".")
    return len(parts) == 3 and bool(parts[0]) and bool(parts[1])


# -- single use -----------------------------------------------------------------------------


class JtiStore(Protocol):
    """Remembers used token ids until they expire. A Redis store (``SET key 1 NX EXAT exp``)
    implements the same method, so single use holds across instances."""

    async def claim(self, jti: str, expires_at: float) -> bool:
        """Record ``jti`` as used; True the first time, False for a replay."""
        ...


class MemoryJtiStore:
    """Used token ids in memory, one process. Entries are forgotten once their token expires."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._used: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._used)

    def claim_now(self, jti: str, expires_at: float) -> bool:
        now = self._clock()
        while self._expiry and self._expiry[0][0] <= now:
            _, old = heapq.heappop(self._expiry)
            self._used.pop(old, None)
        if jti in self._used:
            return False
        self._used[jti] = expires_at
        heapq.heappush(self._expiry, (expires_at, jti))
        return True

    async def claim(self, jti: str, expires_at: float) -> bool:
        return self.claim_now(jti, expires_at)


class StoreJtiStore:
    """Single use across instances over a shared :class:`~hark.security.rate.WindowCounter`
    (``hark.sessionstore``'s ``SessionStore.hit``): the first ``hit`` of ``jti:<id>`` with limit 1 and a
    window lasting until the token expires claims it. Fails closed: when the store cannot be
    reached the token is refused with ``token_store_unavailable`` (the guard answers 503)."""

    def __init__(self, store: WindowCounter, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    async def claim(self, jti: str, expires_at: float) -> bool:
        window = max(1.0, expires_at - self._clock())
        try:
            allowed, _ = await self.store.hit(f"jti:{jti}", 1, window)
        except HarkError:
            raise TokenError(
                "token_store_unavailable", "the session token cannot be checked right now; try again"
            ) from None
        return allowed


# -- issuing and verifying ------------------------------------------------------------------


def signing_key(secret: str | bytes | None) -> bytes:
    """The HS256 key: the configured secret, or a random one for this process when unset."""
    if secret is None:
        return secrets.token_bytes(MIN_SECRET_BYTES)
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"security.token_secret must be at least {MIN_SECRET_BYTES} bytes (HARK_SECURITY_TOKEN_SECRET); "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return key


class TokenIssuer:
    """Mints and verifies session tokens.

    ``clock`` (seconds since the epoch) stamps ``iat``/``nbf``/``exp`` when minting; verification
    checks ``exp``/``nbf`` against the real time (PyJWT, no leeway).
    """

    def __init__(
        self,
        secret: str | bytes | None,
        *,
        ttl_s: float = 60.0,
        store: JtiStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = signing_key(secret)
        self.ttl_s = ttl_s
        self.store: JtiStore = store if store is not None else MemoryJtiStore()
        self._clock = clock
        self._jwt = jwt.PyJWT(options={"enforce_minimum_key_length": True})

    def __repr__(self) -> str:
        return f"TokenIssuer(ttl_s={self.ttl_s})"

    def mint(self, session_scope: str, ttl: float | None = None, *, tenant: str | None = None) -> MintedToken:
        """A token bound to ``session_scope`` (``<kind>:<session id>``, see :func:`scope_for`)."""
        kind, _, session_id = session_scope.partition(":")
        if kind not in KINDS or not session_id:
            raise ValueError(f"session scope must be '<kind>:<session id>' with kind in {KINDS}")
        now = int(self._clock())
        expires_at = now + max(1, round(ttl if ttl is not None else self.ttl_s))
        jti = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": session_scope,
            "jti": jti,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
        }
        if tenant:
            claims["ten"] = tenant
        value = self._jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return MintedToken(value=value, expires_at=expires_at, jti=jti, scope=session_scope)

    def decode(self, token: str, *, kind: str, session_id: str | None = None) -> Claims:
        """Every check except single use: signature, algorithm, times, issuer, binding."""
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "nbf", "iat", "jti", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token_expired", "the session token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token_not_yet_valid", "the session token is not valid yet") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError("token_algorithm_not_allowed", f"session tokens must use {ALGORITHM}") from None
        except jwt.InvalidSignatureError:
            raise TokenError("token_invalid_signature", "the session token's signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError("token_missing_claim", f"the session token lacks '{exc.claim}'") from None
        except jwt.InvalidIssuerError:
            raise TokenError("token_wrong_issuer", "the session token was not issued by hark") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise TokenError("token_malformed", "the session token is malformed") from None
        sub, jti = claims["sub"], claims["jti"]
        if not isinstance(sub, str) or not isinstance(jti, str) or not jti:
            raise TokenError("token_malformed", "the session token is malformed")
        token_kind, _, token_session = sub.partition(":")
        if (
            token_kind != kind
            or not token_session
            or (session_id is not None and token_session != session_id)
        ):
            raise TokenError("token_wrong_session", "the session token is bound to another session")
        return Claims(
            jti=jti,
            sub=sub,
            kind=token_kind,
            session_id=token_session,
            issued_at=float(claims["iat"]),
            not_before=float(claims["nbf"]),
            expires_at=float(claims["exp"]),
            tenant=claims["ten"] if isinstance(claims.get("ten"), str) else "",
        )

    async def verify(self, token: str, *, kind: str, session_id: str | None = None) -> Claims:
        """:meth:`decode`, then claim the token's ``jti`` so it opens one session only.

        ``kind`` is what the connection is for (``realtime`` ...); ``session_id``, when the
        verifying side expects a particular session (a resume), must match the token's binding."""
        claims = self.decode(token, kind=kind, session_id=session_id)
        if not await self.store.claim(claims.jti, claims.expires_at):
            raise TokenError("token_reused", "the session token has already been used")
        return claims


# -- POST /v1/realtime/client_secrets ---------------------------------------------------------


class _ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="ignore")
    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(ge=1, le=7200)


class _SessionSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Kind = "realtime"


class ClientSecretRequest(BaseModel):
    """OpenAI's body shape; session settings other than ``type`` are accepted and ignored
    (the client sends them with ``session.update`` once connected)."""

    model_config = ConfigDict(extra="ignore")
    expires_after: _ExpiresAfter | None = None
    session: _SessionSpec = Field(default_factory=_SessionSpec)


def _error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def client_secrets_router(issuer: TokenIssuer) -> APIRouter:
    """``POST /v1/realtime/client_secrets``: mint a session token (OpenAI's GA route and shape).

    The route declares ``API_KEY``, so :class:`hark.security.guard.HandshakeGuard` has already
    required an API key (when keys are configured) before it runs. The requested lifetime is
    capped at ``security.token_ttl_s``; the response's ``expires_at`` is the truth."""
    router = APIRouter()

    @router.post("/v1/realtime/client_secrets", tags=["realtime"], dependencies=[API_KEY])
    async def client_secrets(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = ClientSecretRequest.model_validate_json(raw) if raw.strip() else ClientSecretRequest()
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(part) for part in first["loc"]) or None
            return _error(400, f"{param or 'request'}: {first['msg']}", "invalid_value", param)
        ttl = issuer.ttl_s
        if body.expires_after is not None:
            ttl = min(ttl, body.expires_after.seconds)
        state = request.scope.get("state") or {}
        principal = state.get("hark_principal")  # set by the guard (hark.security.scope.STATE_KEY)
        minted = issuer.mint(scope_for(body.session.type), ttl, tenant=getattr(principal, "owner", None))
        return JSONResponse(
            {
                "value": minted.value,
                "expires_at": minted.expires_at,
                "session": {"type": body.session.type, "id": minted.session_id, "object": "realtime.session"},
            },
            headers={"Cache-Control": "no-store"},
        )

    return router
