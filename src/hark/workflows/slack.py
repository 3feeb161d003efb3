"""Post the meeting's summary, decisions and action items to a Slack incoming webhook.

The transcript is not posted. The webhook URL carries Slack's token, so it is a secret: it is never
logged or put in an error message. Slack answers 429 with ``Retry-After`` when rate limited; that
wait is honoured (see :mod:`hark.workflows.delivery`), as are the SSRF guard and the no-redirect
rule.
"""

from __future__ import annotations

import asyncio
import json
import random as _random
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hark.workflows.delivery import Delivery, RetryPolicy, Sleep, config_url, post_with_retries
from hark.workflows.delivery import Random as RandomFn
from hark.workflows.ssrf import Resolver

if TYPE_CHECKING:
    from hark.config import Settings, WorkflowConfig
    from hark.meetings.models import MeetingResult

SECTION_LIMIT = 3000
"""Slack's limit on a section block's text."""
FALLBACK_LIMIT = 300


def escape(text: str) -> str:
    """Slack mrkdwn control characters (``&``, ``<``, ``>``) as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    return "under a minute" if minutes < 1 else f"{minutes} min"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SECTION_LIMIT)}}


def slack_payload(result: MeetingResult) -> dict[str, Any]:
    """``{"text": <notification fallback>, "blocks": [...]}`` for one meeting."""
    summary = result.summary.strip() if result.summary else ""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Meeting summary", "emoji": False}},
        _section(escape(summary) if summary else "_No summary was produced for this meeting._"),
    ]
    if result.decisions:
        lines = "\n".join(f"• {escape(decision)}" for decision in result.decisions)
        blocks.append(_section(f"*Decisions*\n{lines}"))
    if result.actions:
        items = []
        for action in result.actions:
            line = f"• {escape(action.task)}"
            details = [escape(part) for part in (action.owner, action.due and f"due {action.due}") if part]
            if details:
                line += f" ({', '.join(details)})"
            items.append(line)
        blocks.append(_section("*Action items*\n" + "\n".join(items)))
    speakers = {segment.speaker for segment in result.transcript if segment.speaker}
    context = [_minutes(result.duration_s)]
    if speakers:
        context.append(f"{len(speakers)} speaker{'s' if len(speakers) != 1 else ''}")
    context.append(f"meeting {escape(result.meeting_id)}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    fallback = f"Meeting summary: {summary}" if summary else "Meeting finished (no summary)."
    return {"text": _clip(escape(fallback), FALLBACK_LIMIT), "blocks": blocks}


class SlackWorkflow:
    def __init__(
        self,
        name: str,
        url: str,
        *,
        allow: Sequence[str] = (),
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        random: RandomFn = _random.random,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.name = name
        self._url = url
        self._allow = list(allow)
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._random = random
        self._resolver = resolver
        self._verify = verify
        self.last_delivery: Delivery | None = None

    @classmethod
    def from_config(cls, config: WorkflowConfig, settings: Settings) -> SlackWorkflow:
        return cls(
            config.name or config.kind,
            config_url(config),
            allow=settings.meetings.ssrf_allow,
            policy=RetryPolicy(attempts=config.attempts, timeout=config.timeout),
        )

    def __repr__(self) -> str:
        return f"SlackWorkflow(name={self.name!r})"

    async def run(self, result: MeetingResult) -> None:
        body = json.dumps(slack_payload(result), ensure_ascii=False).encode("utf-8")
        delivery = Delivery()
        self.last_delivery = delivery
        await post_with_retries(
            self._url,
            body,
            allow=self._allow,
            policy=self._policy,
            label=self.name,
            what="Slack",
            content_type="application/json; charset=utf-8",
            sleep=self._sleep,
            random=self._random,
            resolver=self._resolver,
            delivery=delivery,
            verify=self._verify,
        )
