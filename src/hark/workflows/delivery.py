"""One HTTP POST, retried: the transport shared by the webhook and Slack workflows.

Each attempt first resolves and checks the target again (:func:`hark.workflows.ssrf.check_url`),
then connects to exactly the addresses that passed: the request URL carries the checked IP, the
``Host`` header the original host, and TLS the original name as SNI (and for certificate
verification). So DNS rebinding between the check and the connect is impossible, and no other
resolver (a proxy, ``httpx``) ever sees the name. Environment proxies are ignored for the same
reason (``trust_env=False``).

Retried: connection errors, timeouts, 408, 429 and 5xx, with exponential backoff and full jitter
(``random() * min(backoff_max_s, backoff_s * 2**n)``), or exactly the server's ``Retry-After``
when it sends one (up to ``retry_after_cap_s``; a longer wait ends the delivery instead of
ignoring the server). Final: any other 4xx, every 3xx (redirects are never followed), and a
refused target.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random as _random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from hark import __version__
from hark.errors import ConfigError, parse_retry_after
from hark.workflows.base import WorkflowError, record_attempt
from hark.workflows.ssrf import IP, Resolver, SSRFBlocked, Target, check_url, parse_url

if TYPE_CHECKING:
    from hark.config import WorkflowConfig

logger = logging.getLogger("hark.workflows")

Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]
HeadersFor = Callable[[int], Mapping[str, str]]
"""Attempt number (1-based) → extra headers for that attempt (e.g. a fresh signature)."""

MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = f"hark/{__version__}"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    timeout: float = 10.0
    """Budget for one attempt: resolve, connect, send and read the reply."""
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    retry_after_cap_s: float = 60.0

    def backoff(self, retry: int, random: Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**retry)); ``retry`` counts from 0."""
        return float(random()) * min(self.backoff_max_s, self.backoff_s * 2.0**retry)


@dataclass
class Delivery:
    """What one delivery did (for tests and figures)."""

    attempts: int = 0
    delays: list[float] = field(default_factory=list)
    statuses: list[int | None] = field(default_factory=list)
    """One per attempt: the HTTP status, or None when there was none (timeout, refused, ...)."""


def config_url(config: WorkflowConfig) -> str:
    """The workflow's URL from ``url_env`` (preferred) or ``url``; ConfigError when neither is set
    or it is not http(s). The message never contains the URL."""
    value = os.environ.get(config.url_env) if config.url_env else None
    if not value and config.url is not None:
        value = config.url.get_secret_value()
    if not value:
        where = f"environment variable {config.url_env}" if config.url_env else "url"
        raise ConfigError(f"{config.kind} workflow needs a URL ({where} is not set)")
    try:
        parse_url(value)
    except SSRFBlocked as exc:
        raise ConfigError(f"{config.kind} workflow URL: {exc}") from None
    return value.strip()


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status


class _Final(Exception):
    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def retry_after_seconds(value: str | None, *, cap: float = 3600.0) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unusable."""
    seconds = parse_retry_after(value, cap=cap)
    if seconds is not None or not value:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(cap, max(0.0, when.timestamp() - time.time()))


def pinned_request(
    client: httpx.AsyncClient,
    target: Target,
    ip: IP,
    body: bytes,
    headers: Mapping[str, str],
) -> httpx.Request:
    """A POST to ``ip`` that the server sees as a request for ``target``'s host name."""
    netloc = target.url.netloc.decode("ascii")
    request = client.build_request(
        "POST",
        target.url.copy_with(host=str(ip)),
        content=body,
        headers={**headers, "Host": netloc},
    )
    if target.scheme == "https":
        request.extensions["sni_hostname"] = target.host
    return request


async def _read_limited(response: httpx.Response) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_raw():
        data.extend(chunk)
        if len(data) >= MAX_RESPONSE_BYTES:
            break
    return bytes(data[:MAX_RESPONSE_BYTES])


async def _attempt(
    client: httpx.AsyncClient,
    url: str,
    allow: Sequence[str],
    body: bytes,
    headers: Mapping[str, str],
    resolver: Resolver | None,
    what: str,
) -> tuple[int, bytes]:
    """One attempt: (status, first bytes of the reply) for a 2xx; raises otherwise."""
    try:
        target = await check_url(url, allow, resolver=resolver)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise _Retry("target name did not resolve") from exc
    last: Exception | None = None
    for ip in target.addresses:
        request = pinned_request(client, target, ip, body, headers)
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            if _tls_failure(exc):
                raise _Final(f"TLS with {what} failed (certificate or protocol)") from exc
            last = exc  # nothing was sent: the next address may answer
            continue
        except httpx.TimeoutException as exc:
            raise _Retry("timed out") from exc
        except httpx.TransportError as exc:
            raise _Retry(f"connection failed ({type(exc).__name__})") from exc
        try:
            content = await _read_limited(response)
        except httpx.TimeoutException as exc:
            raise _Retry("timed out reading the reply") from exc
        except httpx.TransportError as exc:
            raise _Retry(f"connection failed ({type(exc).__name__})") from exc
        finally:
            await response.aclose()
        status = response.status_code
        if 200 <= status < 300:
            return status, content
        if 300 <= status < 400:
            raise _Final(f"{what} answered HTTP {status} (a redirect; redirects are not followed)", status)
        if status in (408, 429) or status >= 500:
            retry_after = retry_after_seconds(response.headers.get("retry-after"))
            raise _Retry(f"HTTP {status}", retry_after, status)
        raise _Final(f"{what} refused the delivery (HTTP {status}{_detail(content)})", status)
    raise _Retry(f"connection failed ({type(last).__name__})")


def _tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _detail(content: bytes) -> str:
    """A short machine-readable error word from the body (Slack's ``invalid_token``, ...), else ''."""
    text = content[:64].decode("ascii", "replace").strip()
    if text and len(text) <= 40 and all(c.isalnum() or c in "_-." for c in text):
        return f": {text}"
    return ""


async def post_with_retries(
    url: str,
    body: bytes,
    *,
    allow: Sequence[str],
    policy: RetryPolicy,
    label: str,
    what: str = "the receiver",
    content_type: str = "application/json",
    headers_for: HeadersFor | None = None,
    sleep: Sleep = asyncio.sleep,
    random: Random = _random.random,
    resolver: Resolver | None = None,
    delivery: Delivery | None = None,
    verify: ssl.SSLContext | bool = True,
) -> Delivery:
    """POST ``body`` to ``url`` until it is accepted (2xx) or the policy gives up.

    Raises :class:`WorkflowError` (:class:`SSRFBlocked` for a refused target) carrying the number
    of attempts. Neither the URL nor the body ever appears in a message or a log record.
    """
    record = delivery if delivery is not None else Delivery()
    base_headers = {"Content-Type": content_type, "User-Agent": USER_AGENT}
    async with httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        verify=verify,
        timeout=httpx.Timeout(policy.timeout),
    ) as client:
        for attempt in range(1, policy.attempts + 1):
            record.attempts = attempt
            record_attempt()
            headers = {**base_headers, **(headers_for(attempt) if headers_for else {})}
            try:
                async with asyncio.timeout(policy.timeout):
                    status, _ = await _attempt(client, url, allow, body, headers, resolver, what)
            except SSRFBlocked as exc:
                record.statuses.append(None)
                raise SSRFBlocked(str(exc), attempts=attempt) from None
            except _Final as exc:
                record.statuses.append(exc.status)
                raise WorkflowError(exc.reason, attempts=attempt) from None
            except _Retry as exc:
                record.statuses.append(exc.status)
                reason, retry_after = exc.reason, exc.retry_after
            except TimeoutError:
                record.statuses.append(None)
                reason, retry_after = f"timed out after {policy.timeout:g} s", None
            else:
                record.statuses.append(status)
                return record
            if attempt >= policy.attempts:
                raise WorkflowError(
                    f"gave up after {attempt} attempt{'s' if attempt > 1 else ''}: {reason}",
                    attempts=attempt,
                    retryable=True,
                )
            if retry_after is not None:
                if retry_after > policy.retry_after_cap_s:
                    raise WorkflowError(
                        f"{reason}; Retry-After {retry_after:g} s is longer than the "
                        f"{policy.retry_after_cap_s:g} s this workflow waits",
                        attempts=attempt,
                        retryable=True,
                    )
                delay = retry_after
            else:
                delay = policy.backoff(attempt - 1, random)
            record.delays.append(delay)
            logger.info(
                "workflow attempt failed; retrying",
                extra={"workflow": label, "attempt": attempt, "reason": reason, "delay_s": round(delay, 3)},
            )
            await sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
