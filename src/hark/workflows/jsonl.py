"""Append one JSON line per meeting to a local file.

Each line is ``{"type": "meeting.completed", "timestamp": ..., "data": <MeetingResult>}`` (the
webhook envelope). The file is created ``0600`` (it holds transcripts) with its directories; each
append holds an exclusive ``flock`` (so processes and threads sharing the file never interleave),
writes the whole line, and ``fsync``s before the lock is released. A torn last line left by a crash
is closed with a newline first, so every later line still parses.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hark.errors import ConfigError
from hark.workflows.base import WorkflowError, record_attempt
from hark.workflows.webhook import event_body

if TYPE_CHECKING:
    from hark.config import Settings, WorkflowConfig
    from hark.meetings.models import MeetingResult


def append_line(path: Path, line: bytes) -> None:
    """Append ``line`` (one JSON document, no newline) durably; blocking."""
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            data = line + b"\n"
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class JsonlWorkflow:
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    @classmethod
    def from_config(cls, config: WorkflowConfig, settings: Settings) -> JsonlWorkflow:
        if config.path is None:
            raise ConfigError("jsonl workflow needs a path")
        return cls(config.name or config.kind, config.path)

    def __repr__(self) -> str:
        return f"JsonlWorkflow(name={self.name!r})"

    async def run(self, result: MeetingResult) -> None:
        record_attempt()
        # ASCII-only, so U+2028 and friends cannot split a line for readers that use splitlines().
        line = event_body(result, ascii_only=True)
        try:
            await asyncio.to_thread(append_line, self.path, line)
        except OSError as exc:
            # The OS's reason, not the path (which may name the user).
            raise WorkflowError(
                f"cannot append to the JSONL file ({exc.strerror or type(exc).__name__})"
            ) from exc
