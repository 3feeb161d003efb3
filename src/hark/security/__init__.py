"""Authentication, session tokens, limits and the WebSocket handshake guard (see docs/security.md).

Pure cores (:mod:`~hark.security.auth`, :mod:`~hark.security.tokens`,
:mod:`~hark.security.rate`, :mod:`~hark.security.slots`, :mod:`~hark.security.limits`,
:mod:`~hark.security.origins`) and one thin ASGI shell
(:mod:`~hark.security.guard`) that enforces what each route declares
(:mod:`~hark.security.access`).
"""

from __future__ import annotations

from hark.security.auth import (
    ANONYMOUS,
    AuthError,
    KeyRing,
    Principal,
    authenticate,
    check_startup,
    is_loopback,
)
from hark.security.close_codes import (
    CLOSE_IDLE,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN,
    CLOSE_UNAUTHORIZED,
)
from hark.security.context import Security
from hark.security.denial_log import install_denial_log_filter
from hark.security.guard import HandshakeGuard
from hark.security.limits import AudioThrottle, IdleTimer, OutboundBudget, Verdict
from hark.security.origins import origin_allowed
from hark.security.rate import MemoryRateLimiter, RateLimiter, StoreRateLimiter, TokenBucket, WindowCounter
from hark.security.scope import owner_of, principal_of
from hark.security.slots import SessionCap
from hark.security.tokens import (
    Claims,
    JtiStore,
    MemoryJtiStore,
    MintedToken,
    StoreJtiStore,
    TokenError,
    TokenIssuer,
    client_secrets_router,
    scope_for,
)

__all__ = [
    "ANONYMOUS",
    "CLOSE_IDLE",
    "CLOSE_SLOW_CONSUMER",
    "CLOSE_TOO_BIG",
    "CLOSE_TRY_AGAIN",
    "CLOSE_UNAUTHORIZED",
    "AudioThrottle",
    "AuthError",
    "Claims",
    "HandshakeGuard",
    "IdleTimer",
    "JtiStore",
    "KeyRing",
    "MemoryJtiStore",
    "MemoryRateLimiter",
    "MintedToken",
    "OutboundBudget",
    "Principal",
    "RateLimiter",
    "Security",
    "SessionCap",
    "StoreJtiStore",
    "StoreRateLimiter",
    "TokenBucket",
    "TokenError",
    "TokenIssuer",
    "Verdict",
    "WindowCounter",
    "authenticate",
    "check_startup",
    "client_secrets_router",
    "install_denial_log_filter",
    "is_loopback",
    "origin_allowed",
    "owner_of",
    "principal_of",
    "scope_for",
]
