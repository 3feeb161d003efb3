"""Session state, resume tokens and rate limits in Redis, shared by every hark instance using it.

Keys (all under ``key_prefix``, all with a TTL):

* ``session:<id>``        the state as JSON; lives ``state_ttl_s`` after the last save
* ``session-token:<id>``  the digest of the session's live resume token
* ``resume:<digest>``     the session id a token names; removed by the redeem (``GETDEL``)
* ``rate:<digest>``       a fixed-window counter (``SET NX PX`` + ``INCR`` in one ``MULTI``)

Tokens and rate-limit keys are stored as SHA-256 digests, so neither appears in key names. Needs
Redis 6.2 or later (``GETDEL``, ``SET ... GET``); not Redis Cluster (one transaction spans keys).

Every call is bounded by ``timeout_s`` (socket timeouts plus an ``asyncio.timeout`` around the whole
call): when Redis is down or frozen the call raises :class:`StoreUnavailable` in that time, and the
next call simply tries again on a fresh connection, so the store recovers on its own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from hark.errors import ConfigError
from hark.sessionstore.store import (
    TOKEN_BYTES,
    SessionState,
    StoreUnavailable,
    check_rate,
    check_session_id,
    check_ttl,
    key_digest,
    token_digest,
)

log = logging.getLogger("hark.state")

_T = TypeVar("_T")

SCHEMES = ("redis", "rediss", "unix")


def redact_url(url: str) -> str:
    """The URL without its credentials, for messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "redis"
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000 + 0.5))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RedisSessionStore:
    """A :class:`~hark.sessionstore.store.SessionStore` on ``redis.asyncio``."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "hark:",
        state_ttl_s: float = 300.0,
        timeout_s: float = 2.0,
    ) -> None:
        if not url.startswith(tuple(f"{scheme}://" for scheme in SCHEMES)):
            raise ConfigError(
                "redis.url must start with redis://, rediss:// or unix:// (HARK_REDIS_URL), "
                f"not {redact_url(url)!r}"
            )
        self.key_prefix = key_prefix
        self.state_ttl_s = check_ttl(state_ttl_s, "state_ttl_s")
        self.timeout_s = check_ttl(timeout_s, "timeout_s")
        self.where = redact_url(url)
        try:
            self._client: Redis = Redis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                # One immediate retry replaces a pooled connection that Redis closed while idle
                # (e.g. it restarted); anything longer is cut off by the call's own timeout.
                retry=Retry(NoBackoff(), 1),  # type: ignore[no-untyped-call,unused-ignore]
                retry_on_error=[RedisConnectionError],  # redis-py 5 retries only what is listed
                retry_on_timeout=False,
                decode_responses=False,
                client_name="hark",
            )
        except ValueError as exc:
            raise ConfigError(f"redis.url ({self.where}) is not usable: {exc}") from None
        self._closed = False

    # -- keys ----------------------------------------------------------------------------------

    def _state_key(self, session_id: str) -> str:
        return f"{self.key_prefix}session:{session_id}"

    def _current_key(self, session_id: str) -> str:
        return f"{self.key_prefix}session-token:{session_id}"

    def _token_key(self, digest: str) -> str:
        return f"{self.key_prefix}resume:{digest}"

    def _rate_key(self, key: str) -> str:
        return f"{self.key_prefix}rate:{key_digest(key)}"

    # -- the bound on every call ---------------------------------------------------------------

    async def _call(self, operation: str, work: Callable[[], Awaitable[_T]]) -> _T:
        if self._closed:
            raise StoreUnavailable(f"session store ({self.where}) is closed", operation=operation)
        try:
            async with asyncio.timeout(self.timeout_s):
                return await work()
        except TimeoutError:
            message = f"Redis at {self.where} did not answer {operation} within {self.timeout_s:g} s"
        except AuthenticationError as exc:
            message = (
                f"Redis at {self.where} refused the credentials ({operation}): {exc}; "
                "check the password in redis.url (HARK_REDIS_URL)"
            )
        except RedisError as exc:
            message = f"Redis at {self.where} failed {operation}: {type(exc).__name__}: {exc}"
        except OSError as exc:
            message = f"Redis at {self.where} failed {operation}: {type(exc).__name__}: {exc}"
        log.debug("session store unavailable: %s", message)
        raise StoreUnavailable(f"session store unavailable: {message}", operation=operation) from None

    # -- SessionStore --------------------------------------------------------------------------

    async def save(self, session_id: str, state: SessionState) -> None:
        check_session_id(session_id)
        data = state.model_copy(update={"updated_at": time.time()}).model_dump_json()
        ttl_ms = _ms(self.state_ttl_s)
        current_key = self._current_key(session_id)

        async def work() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(self._state_key(session_id), data, px=ttl_ms)
                pipe.get(current_key)
                pipe.pexpire(current_key, ttl_ms)
                _, current, _ = await pipe.execute()
            digest = _text(current)
            if digest is not None:
                await self._client.pexpire(self._token_key(digest), ttl_ms)

        await self._call("save", work)

    async def load(self, session_id: str) -> SessionState | None:
        check_session_id(session_id)

        async def work() -> Any:
            return await self._client.get(self._state_key(session_id))

        data = await self._call("load", work)
        if data is None:
            return None
        try:
            return SessionState.model_validate_json(data)
        except ValueError as exc:
            log.warning("session %s: stored state is unreadable, ignoring it: %s", session_id, exc)
            return None

    async def issue_resume_token(self, session_id: str, ttl_s: float) -> str:
        check_session_id(session_id)
        ttl_ms = _ms(check_ttl(ttl_s))
        current_key = self._current_key(session_id)

        async def work() -> str:
            while True:
                token = secrets.token_urlsafe(TOKEN_BYTES)
                digest = token_digest(token)
                assert digest is not None
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.set(self._token_key(digest), session_id, px=ttl_ms, nx=True)
                    pipe.set(current_key, digest, px=ttl_ms, get=True)
                    created, previous = await pipe.execute()
                previous_digest = _text(previous)
                if previous_digest is not None and previous_digest != digest:
                    await self._client.delete(self._token_key(previous_digest))
                if created:  # else: a 256-bit collision; draw again
                    return token

        return await self._call("issue_resume_token", work)

    async def redeem(self, token: str) -> str | None:
        digest = token_digest(token)
        if digest is None:
            return None

        async def work() -> Any:
            return await self._client.getdel(self._token_key(digest))

        return _text(await self._call("redeem", work))

    async def delete(self, session_id: str) -> None:
        check_session_id(session_id)

        async def work() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.getdel(self._current_key(session_id))
                pipe.delete(self._state_key(session_id))
                current, _ = await pipe.execute()
            digest = _text(current)
            if digest is not None:
                await self._client.delete(self._token_key(digest))

        await self._call("delete", work)

    async def ping(self) -> None:
        async def work() -> None:
            await self._client.ping()

        await self._call("ping", work)

    async def hit(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        check_rate(key, limit, window_s)
        window_ms = _ms(window_s)
        rate_key = self._rate_key(key)

        async def work() -> tuple[int, int]:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(rate_key, 0, px=window_ms, nx=True)
                pipe.incr(rate_key)
                pipe.pttl(rate_key)
                _, count, pttl = await pipe.execute()
            if pttl < 0:  # a counter without expiry (not one of ours): give it one
                await self._client.pexpire(rate_key, window_ms)
                pttl = window_ms
            return int(count), int(pttl)

        count, pttl = await self._call("hit", work)
        if count <= limit:
            return True, 0.0
        return False, pttl / 1000.0

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._client.aclose()
        except (RedisError, OSError) as exc:  # closing a dead connection is fine
            log.debug("closing the Redis client: %s", exc)
