"""Logging set-up: one line per record, static messages, context in key=value fields.

Messages never carry transcripts, prompts, audio or secrets; callers pass numbers and ids in
``extra`` and this formatter appends them.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from hark.observability.jsonlog import JsonFormatter, SessionContextFilter, redact, safe_fields

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class KeyValueFormatter(logging.Formatter):
    debug_fields = False
    """Let ``debug_*`` fields through (``observability.debug_fields``)."""

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        fields = safe_fields(record, debug_fields=self.debug_fields)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


def configure_logging(
    level: str,
    log_dir: Path | None = None,
    *,
    log_format: str = "text",
    debug_fields: bool = False,
    log_ids: bool = False,
) -> None:
    from hark.security import loghygiene

    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(debug_fields=debug_fields)
    else:
        formatter = KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        formatter.debug_fields = debug_fields
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    problem = None
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                log_dir / "hark.log", maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8"
            )
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
    handler.setFormatter(formatter)
    handler.addFilter(SessionContextFilter())
    # Wire dumps (headers, frames) at debug and meeting ids are rewritten by their structure.
    loghygiene.install(handler, log_ids=log_ids)
    root = logging.getLogger("hark")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # uvicorn's own lines (a WebSocket's path with its query string) follow the same rules.
    server = logging.getLogger("uvicorn")
    server.handlers[:] = [handler]
    server.setLevel(level.upper())
    server.propagate = False
    if problem is not None:
        root.warning(
            "log_dir is not writable; logging to stderr", extra={"log_dir": str(log_dir), "error": problem}
        )
