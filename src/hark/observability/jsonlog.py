"""JSON log lines (``observability.log_format: json``) and the rules that keep them clean.

One object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, then the
record's ``extra`` fields, then ``exception`` when there is one. A session's id is added as
``session`` to every line logged inside :func:`session_scope` (by :class:`SessionContextFilter`).

What never reaches a line (the rule is in :func:`allowed_field`):

- A field whose name is, or contains as a ``_``-separated word, a sensitive name
  (:data:`CONTENT_WORDS`: transcript, text, prompt, audio, ...; :data:`SECRET_WORDS`: key,
  token, secret, password, url, authorization, ...). ``api_key``, ``user_text``,
  ``webhook_url`` and ``transcript`` are all dropped, with their values.
- A field named ``debug_*``, unless ``observability.debug_fields`` is on. When it is on,
  ``debug_*`` fields may carry content (``debug_transcript``) but still never a secret
  (``debug_api_key`` is dropped either way).

Values that are kept are scrubbed of anything shaped like a credential (bearer tokens, ``sk-``
keys, JWTs, Fernet keys, Slack webhook URLs and tokens, ``whsec_`` secrets, passwords in URLs,
key-like query parameters): an exception message may quote a URL or a header. Bytes are logged
as their length only.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

CONTENT_WORDS = frozenset(
    {
        "transcript",
        "transcripts",
        "text",
        "texts",
        "prompt",
        "prompts",
        "instructions",
        "message",
        "messages",
        "content",
        "delta",
        "utterance",
        "reply",
        "summary",
        "audio",
        "pcm",
        "wav",
        "body",
        "payload",
    }
)
"""Words naming what people said or what was said to them: only in enabled ``debug_*`` fields."""

SECRET_WORDS = frozenset(
    {
        "key",
        "keys",
        "apikey",
        "token",
        "tokens",
        "secret",
        "secrets",
        "password",
        "passwd",
        "credential",
        "credentials",
        "authorization",
        "auth",
        "cookie",
        "cookies",
        "header",
        "headers",
        "url",
        "urls",
        "uri",
        "dsn",
        "webhook",
        "fernet",
        "signature",
    }
)
"""Words naming credentials or what may embed one (a Slack URL carries its token): never logged."""

RESERVED = ("ts", "level", "logger", "message", "session", "exception")

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("hark_log_session", default=None)

_REDACTIONS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 ***"),
    (re.compile(r"(?i)https?://hooks\.slack\.com/\S*"), "https://hooks.slack.com/***"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+"), "xox*-***"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), "whsec_***"),
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}"), r"\1-***"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "***jwt***"),
    (re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"), "***"),  # Fernet key
    (re.compile(r"(://)[^/\s:@]+:[^/\s@]+@"), r"\1***@"),  # user:password@host
    (
        re.compile(
            r"(?i)([?&;](?:api[_-]?key|key|token|access_token|secret|sig|signature|password)=)[^&\s#\"']+"
        ),
        r"\1***",
    ),
)


def redact(text: str) -> str:
    """``text`` with anything shaped like a credential replaced by ``***``."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _words(name: str) -> set[str]:
    return {w for w in re.split(r"[_\-.\s]+", name.lower()) if w}


def allowed_field(name: str, *, debug_fields: bool) -> bool:
    """Whether an ``extra`` field may appear in a log line (see the module docstring)."""
    lowered = name.lower()
    words = _words(name)
    if words & SECRET_WORDS or "api_key" in lowered or "apikey" in lowered:
        return False
    if lowered.startswith("debug_"):
        return debug_fields
    return not words & CONTENT_WORDS


def _clean(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, PurePath):
        return redact(str(value))
    if depth < 4 and isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    if depth < 4 and isinstance(value, dict):
        return {
            str(k): _clean(v, depth + 1)
            for k, v in value.items()
            if allowed_field(str(k), debug_fields=False)
        }
    return redact(str(value))


def safe_fields(record: logging.LogRecord, *, debug_fields: bool = False) -> dict[str, Any]:
    """The record's ``extra`` fields that may be logged, their values scrubbed. Also usable by
    the text formatter, so both formats follow one rule."""
    return {
        key: _clean(value)
        for key, value in vars(record).items()
        if key not in _STANDARD and allowed_field(key, debug_fields=debug_fields)
    }


class JsonFormatter(logging.Formatter):
    def __init__(self, *, debug_fields: bool = False) -> None:
        super().__init__()
        self.debug_fields = debug_fields

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        session = getattr(record, "session", None)
        if session is not None:
            line["session"] = _clean(session)
        for key, value in safe_fields(record, debug_fields=self.debug_fields).items():
            if key == "session":
                continue
            line[f"field_{key}" if key in RESERVED else key] = value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


class SessionContextFilter(logging.Filter):
    """Adds ``session`` (the id bound by :func:`session_scope`) to records that lack one.
    Attach it to the handler, so records from every ``hark.*`` logger get it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "session"):
            session = _session.get()
            if session is not None:
                record.session = session
        return True


@contextlib.contextmanager
def session_scope(session_id: str) -> Iterator[None]:
    """Log lines written in this block, and in tasks it starts, carry ``session=session_id``."""
    token = _session.set(session_id)
    try:
        yield
    finally:
        _session.reset(token)


def current_session() -> str | None:
    return _session.get()
