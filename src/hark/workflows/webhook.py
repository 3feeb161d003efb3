"""Generic webhooks, signed per the Standard Webhooks spec (https://www.standardwebhooks.com).

Every delivery carries ``webhook-id`` (``msg_<uuid>``, the same on every retry so receivers can
de-duplicate), ``webhook-timestamp`` (Unix seconds, fresh per attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, keyed with the base64-decoded secret
after its ``whsec_`` prefix). The body is::

    {"type": "meeting.completed", "timestamp": "<ISO 8601>", "data": <MeetingResult>}

(``meeting.failed`` when the meeting's status is ``failed``). Retries, backoff, redirects and the
SSRF guard are those of :mod:`hark.workflows.delivery`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import random as _random
import ssl
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hark.errors import ConfigError
from hark.workflows.delivery import Delivery, RetryPolicy, Sleep, config_url, post_with_retries
from hark.workflows.delivery import Random as RandomFn
from hark.workflows.ssrf import Resolver

if TYPE_CHECKING:
    from hark.config import Settings, WorkflowConfig
    from hark.meetings.models import MeetingResult

SECRET_PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional, padding too)."""
    text = secret.strip()
    if text.startswith(SECRET_PREFIX):
        text = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("the webhook secret must be base64 after its 'whsec_' prefix") from None
    if not key:
        raise ConfigError("the webhook secret is empty")
    return key


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def event_body(result: MeetingResult, *, ascii_only: bool = False) -> bytes:
    event_type = "meeting.failed" if result.status == "failed" else "meeting.completed"
    payload: dict[str, Any] = {
        "type": event_type,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "data": result.model_dump(mode="json"),
    }
    return json.dumps(payload, ensure_ascii=ascii_only, separators=(",", ":")).encode("utf-8")


class WebhookWorkflow:
    def __init__(
        self,
        name: str,
        url: str,
        secret: str,
        *,
        allow: Sequence[str] = (),
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        random: RandomFn = _random.random,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        clock: Callable[[], float] = time.time,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self._url = url
        self._key = decode_secret(secret)
        self._allow = list(allow)
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._random = random
        self._resolver = resolver
        self._verify = verify
        self._clock = clock
        self._headers = dict(headers or {})
        self.last_delivery: Delivery | None = None
        """The most recent delivery's attempts and delays (tests and figures)."""

    @classmethod
    def from_config(cls, config: WorkflowConfig, settings: Settings) -> WebhookWorkflow:
        url = config_url(config)
        secret = os.environ.get(config.secret_env) if config.secret_env else None
        if not secret:
            raise ConfigError(
                "webhook workflow needs a signing secret: set secret_env to an environment variable "
                "holding a Standard Webhooks secret (whsec_<base64>)"
                + (f"; {config.secret_env} is not set" if config.secret_env else "")
            )
        return cls(
            config.name or config.kind,
            url,
            secret,
            allow=settings.meetings.ssrf_allow,
            policy=RetryPolicy(attempts=config.attempts, timeout=config.timeout),
        )

    def __repr__(self) -> str:
        return f"WebhookWorkflow(name={self.name!r})"

    async def run(self, result: MeetingResult) -> None:
        await self.deliver(event_body(result))

    async def deliver(self, body: bytes, *, message_id: str | None = None) -> Delivery:
        message_id = message_id or new_message_id()

        def headers_for(attempt: int) -> dict[str, str]:
            timestamp = int(self._clock())
            return {
                **self._headers,
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(self._key, message_id, timestamp, body),
            }

        delivery = Delivery()
        self.last_delivery = delivery
        return await post_with_retries(
            self._url,
            body,
            allow=self._allow,
            policy=self._policy,
            label=self.name,
            what="the webhook receiver",
            headers_for=headers_for,
            sleep=self._sleep,
            random=self._random,
            resolver=self._resolver,
            delivery=delivery,
            verify=self._verify,
        )
