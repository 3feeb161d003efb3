"""The security state one process shares: keys, tokens, limits, the session cap."""

from __future__ import annotations

from dataclasses import dataclass

from hark.config import SecuritySettings, Settings
from hark.security.auth import KeyRing
from hark.security.budget import TenantBudget
from hark.security.rate import MemoryRateLimiter, RateLimiter, StoreRateLimiter, WindowCounter
from hark.security.slots import PreAuthBudget, SessionCap
from hark.security.tokens import JtiStore, MemoryJtiStore, StoreJtiStore, TokenIssuer


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
