"""Who may connect: API keys, session tokens, and the start-up rule for binding beyond loopback.

Credentials are accepted in three places:

- ``Authorization: Bearer <API key or session token>`` (REST takes API keys only);
- ``Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.<API key or session token>``, the
  convention OpenAI's browser clients use, since a browser cannot set headers on a WebSocket;
- the first WebSocket message, ``{"type": "hark.auth", "token": "..."}`` (see the guard).

API keys are compared in constant time (SHA-256 digests, every key checked). A principal is
identified by ``key:<index>``, ``token:<jti>``, ``admin`` or ``anonymous``, never by a secret.

Every principal belongs to a *tenant*: the ``tenant`` named beside its key in
``security.api_keys``, else ``key_<first 16 hex digits of the key's SHA-256>`` (stable when keys
are reordered or added); a session token belongs to the tenant of the key that minted it. What a
tenant creates (meetings, resumable sessions) is owned by it and invisible to every other one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from hark.config import APIKeyConfig, SecuritySettings, Settings
from hark.errors import ConfigError
from hark.security.tokens import TokenError, TokenIssuer, looks_like_jwt, signing_key

SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
AUTH_MESSAGE_TYPE = "hark.auth"
MAX_AUTH_MESSAGE_CHARS = 16 * 1024
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

PrincipalKind = Literal["api_key", "token", "admin", "anonymous"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is from. ``id`` is safe to log and keys the rate limits."""

    id: str
    kind: PrincipalKind
    session_id: str | None = None
    """For a session token: the session it is bound to (``sess_...``)."""
    tenant: str = ""
    """Who owns what this principal creates (see the module doc); ``id`` when not set."""

    @property
    def owner(self) -> str:
        return self.tenant or self.id


ANONYMOUS = Principal("anonymous", "anonymous", tenant="anonymous")


def tenant_of(key: SecretStr | APIKeyConfig) -> str:
    """The tenant a configured key belongs to."""
    if isinstance(key, APIKeyConfig):
        return key.tenant
    return "key_" + hashlib.sha256(key.get_secret_value().encode("utf-8", "surrogateescape")).hexdigest()[:16]


def key_secret(key: SecretStr | APIKeyConfig) -> SecretStr:
    return key.key if isinstance(key, APIKeyConfig) else key


class AuthError(Exception):
    """Credentials were presented and refused. ``code`` is stable; ``reason`` is safe to show."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# -- start-up -------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped) and the name localhost. Anything else, including
    0.0.0.0, :: and other names, is not."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_startup(settings: Settings) -> None:
    """Refuse to serve beyond loopback without API keys, and refuse unusable security settings.
    Raises :class:`ConfigError` naming the setting."""
    security = settings.security
    for index, key in enumerate(security.api_keys):
        value = key_secret(key).get_secret_value()
        if not value.strip() or value != value.strip():
            raise ConfigError(
                f"security.api_keys[{index}] is empty or has surrounding whitespace (HARK_SECURITY_API_KEYS)"
            )
    if security.token_secret is not None:
        signing_key(security.token_secret.get_secret_value())
    host = settings.server.host
    if not security.api_keys and not is_loopback(host):
        raise ConfigError(
            f"hark is bound to {host}, which is not loopback, and no API keys are configured; "
            "set security.api_keys (HARK_SECURITY_API_KEYS='[\"<key>\"]') or bind to 127.0.0.1 "
            "(server.host / --host)"
        )


def auth_enabled(settings: Settings | SecuritySettings) -> bool:
    security = settings.security if isinstance(settings, Settings) else settings
    return bool(security.api_keys)


# -- keys -----------------------------------------------------------------------------------


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class KeyRing:
    """Accepted keys, each with the principal id it stands for; matched in constant time."""

    def __init__(self, entries: Iterable[tuple[str, PrincipalKind, SecretStr | str, str]]) -> None:
        """``entries``: (principal id, kind, secret, tenant)."""
        self._entries: list[tuple[Principal, bytes]] = []
        for principal_id, kind, secret, tenant in entries:
            value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            if value:
                self._entries.append((Principal(principal_id, kind, tenant=tenant), _digest(value)))

    @classmethod
    def api_keys(cls, settings: Settings | SecuritySettings) -> KeyRing:
        security = settings.security if isinstance(settings, Settings) else settings
        return cls(
            (f"key:{index}", "api_key", key_secret(key), tenant_of(key))
            for index, key in enumerate(security.api_keys)
        )

    def with_entry(self, principal_id: str, kind: PrincipalKind, secret: SecretStr | str | None) -> KeyRing:
        ring = KeyRing(())
        ring._entries = list(self._entries)
        if secret is not None:
            ring._entries.extend(KeyRing([(principal_id, kind, secret, principal_id)])._entries)
        return ring

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"KeyRing({len(self._entries)} keys)"

    def match(self, candidate: str) -> Principal | None:
        digest = _digest(candidate)
        found: Principal | None = None
        for principal, expected in self._entries:  # no early exit: every key is compared
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        return found


# -- credentials ----------------------------------------------------------------------------


def bearer(headers: Mapping[str, str]) -> str | None:
    """The Bearer credential, or None when there is no Authorization header.
    Raises AuthError for another scheme or an empty value."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise AuthError("invalid_authorization", "expected 'Authorization: Bearer <key>'")
    return credential


def subprotocol_credential(subprotocols: Sequence[str]) -> str | None:
    for protocol in subprotocols:
        if protocol.startswith(SUBPROTOCOL_PREFIX):
            return protocol[len(SUBPROTOCOL_PREFIX) :] or None
    return None


def strip_credentials(subprotocols: Sequence[str]) -> list[str]:
    """The offered subprotocols without credentials, for the application to choose from."""
    return [p for p in subprotocols if not p.startswith(SUBPROTOCOL_PREFIX)]


def presented_credential(headers: Mapping[str, str], subprotocols: Sequence[str]) -> str | None:
    return bearer(headers) or subprotocol_credential(subprotocols)


def auth_message_credential(text: str | None) -> str | None:
    """The credential in a first message ``{"type": "hark.auth", "token": "..."}``, else None."""
    if text is None or len(text) > MAX_AUTH_MESSAGE_CHARS:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != AUTH_MESSAGE_TYPE:
        return None
    token = data.get("token")
    return token if isinstance(token, str) and token else None


async def verify_credential(
    credential: str,
    *,
    keys: KeyRing,
    tokens: TokenIssuer | None,
    kind: str | None,
    session_id: str | None = None,
) -> Principal:
    """An API key (any entry of ``keys``) or, when ``kind`` is given (a WebSocket), a session token
    for that kind. Raises AuthError with the reason."""
    principal = keys.match(credential)
    if principal is not None:
        return principal
    if kind is not None and tokens is not None and looks_like_jwt(credential):
        try:
            claims = await tokens.verify(credential, kind=kind, session_id=session_id)
        except TokenError as exc:
            raise AuthError(exc.code, exc.reason) from None
        return Principal(f"token:{claims.jti}", "token", claims.session_id, tenant=claims.tenant)
    raise AuthError("invalid_api_key", "incorrect API key provided")


async def authenticate(
    headers: Mapping[str, str],
    subprotocols: Sequence[str],
    settings: Settings | SecuritySettings,
    tokens: TokenIssuer | None,
    *,
    kind: str | None = "realtime",
    session_id: str | None = None,
    keys: KeyRing | None = None,
) -> Principal | None:
    """The principal behind a request.

    - auth off (no API keys): :data:`ANONYMOUS`, whatever was presented;
    - no credential presented: ``None``;
    - a valid API key (or a session token for ``kind``, which is None for REST): its principal;
    - anything else: raises :class:`AuthError`.

    ``headers`` is a case-insensitive mapping (Starlette's ``Headers``) or has lowercase keys.
    """
    if not auth_enabled(settings):
        return ANONYMOUS
    credential = presented_credential(headers, subprotocols if kind is not None else ())
    if credential is None:
        return None
    ring = keys if keys is not None else KeyRing.api_keys(settings)
    return await verify_credential(credential, keys=ring, tokens=tokens, kind=kind, session_id=session_id)
