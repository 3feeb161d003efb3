"""The workflow plug-in interface, the registry of kinds, and running them after a meeting.

A workflow is anything with a ``name`` and ``async def run(result)`` that raises
:class:`WorkflowError` when it finally gives up (see ``docs/workflows.md``). Kinds are looked up
in :data:`WORKFLOWS` and imported on demand, so an unused kind's dependencies are never needed.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from hark.errors import ConfigError, HarkError

if TYPE_CHECKING:
    from hark.config import Settings, WorkflowConfig
    from hark.meetings.models import MeetingResult

logger = logging.getLogger("hark.workflows")

WORKFLOWS: dict[str, str] = {
    "slack": "hark.workflows.slack:SlackWorkflow",
    "jsonl": "hark.workflows.jsonl:JsonlWorkflow",
    "webhook": "hark.workflows.webhook:WebhookWorkflow",
}
"""kind → ``"module:Class"``; the class has ``from_config(config, settings) -> Workflow``."""


class WorkflowError(HarkError):
    """A workflow gave up. The message is safe to log: no URL, secret or transcript text."""

    def __init__(self, message: str, *, attempts: int = 1, retryable: bool = False) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.retryable = retryable
        """Whether the failure was of a kind that retrying later might fix (5xx, timeout, ...)."""


@runtime_checkable
class Workflow(Protocol):
    """What runs after a meeting. ``run`` may be called for several meetings at once."""

    name: str

    async def run(self, result: MeetingResult) -> None:
        """Deliver ``result``; raise :class:`WorkflowError` on final failure (after any retries)."""
        ...


class WorkflowFactory(Protocol):
    def from_config(self, config: WorkflowConfig, settings: Settings, /) -> Workflow: ...


@dataclass(frozen=True)
class WorkflowOutcome:
    name: str
    ok: bool
    attempts: int
    error: str | None = None
    elapsed_s: float = 0.0


class _Attempts:
    def __init__(self) -> None:
        self.count = 0


_current_attempts: contextvars.ContextVar[_Attempts | None] = contextvars.ContextVar(
    "hark_workflow_attempts", default=None
)


def record_attempt() -> int:
    """Count one delivery attempt of the workflow now running; returns the attempt number (1-based).

    Optional for plug-ins: one that never calls it is reported as one attempt.
    """
    box = _current_attempts.get()
    if box is None:
        return 0
    box.count += 1
    return box.count


def resolve_kind(kind: str) -> WorkflowFactory:
    from hark.engines.registry import import_from_string

    try:
        target = WORKFLOWS[kind]
    except KeyError:
        raise ConfigError(
            f"meetings.workflows: unknown workflow kind {kind!r}; known: {', '.join(sorted(WORKFLOWS))}"
        ) from None
    factory: WorkflowFactory = import_from_string(target)
    return factory


def build_workflows(settings: Settings) -> list[Workflow]:
    """Every workflow in ``meetings.workflows``; raises ConfigError naming the bad one.

    Unnamed workflows are called after their kind, a repeat getting ``-2``, ``-3``, ...
    """
    built: list[Workflow] = []
    seen: dict[str, int] = {}
    for index, config in enumerate(settings.meetings.workflows):
        base = config.name or config.kind
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}-{seen[base]}"
        if config.name is None or name != config.name:
            config = config.model_copy(update={"name": name})
        try:
            built.append(resolve_kind(config.kind).from_config(config, settings))
        except ConfigError as exc:
            raise ConfigError(f"meetings.workflows[{index}] ({name}): {exc}") from exc
    return built


async def _run_one(workflow: Workflow, result: MeetingResult, limit_s: float | None) -> WorkflowOutcome:
    box = _Attempts()
    _current_attempts.set(box)  # this coroutine runs in its own task, so in its own context
    started = time.monotonic()
    error: str | None = None
    attempts: int | None = None
    try:
        async with asyncio.timeout(limit_s):
            await workflow.run(result)
    except WorkflowError as exc:
        error = str(exc)
        attempts = exc.attempts
    except TimeoutError:
        error = "timed out" if limit_s is None else f"did not finish within {limit_s:g} s"
    except Exception as exc:
        # Only the type: a third-party message may carry a URL or a token.
        error = f"unexpected {type(exc).__name__}"
    elapsed = time.monotonic() - started
    outcome = WorkflowOutcome(
        name=workflow.name,
        ok=error is None,
        attempts=max(1, attempts or box.count),
        error=error,
        elapsed_s=elapsed,
    )
    fields = {
        "workflow": outcome.name,
        "meeting_id": result.meeting_id,
        "attempts": outcome.attempts,
        "elapsed_ms": round(elapsed * 1000),
    }
    if outcome.ok:
        logger.info("workflow delivered", extra=fields)
    else:
        logger.warning("workflow failed", extra={**fields, "error": error})
    return outcome


async def run_workflows(
    workflows: Sequence[Workflow], result: MeetingResult, *, limit_s: float | None = None
) -> list[WorkflowOutcome]:
    """Run every workflow concurrently; one failing (or running past ``limit_s`` seconds) never stops the
    others. Outcomes come back in the order of ``workflows``; each is logged without transcript
    text, URLs or secrets."""
    if not workflows:
        return []
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_run_one(workflow, result, limit_s)) for workflow in workflows]
    return [task.result() for task in tasks]
