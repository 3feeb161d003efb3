"""What happens after a meeting: Slack, a JSONL log, signed webhooks, and plug-ins for more.

See ``docs/workflows.md`` for the plug-in interface.
"""

from __future__ import annotations

from hark.workflows.base import (
    WORKFLOWS,
    Workflow,
    WorkflowError,
    WorkflowOutcome,
    build_workflows,
    record_attempt,
    run_workflows,
)
from hark.workflows.ssrf import SSRFBlocked, resolve_safe

__all__ = [
    "WORKFLOWS",
    "SSRFBlocked",
    "Workflow",
    "WorkflowError",
    "WorkflowOutcome",
    "build_workflows",
    "record_attempt",
    "resolve_safe",
    "run_workflows",
]
