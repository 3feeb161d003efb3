"""Log filters that redact by structure, not by what a secret looks like.

At ``log_level: debug`` the WebSocket library (through uvicorn's ``uvicorn.error`` logger) logs
every handshake header and every frame. A key carried as ``openai-insecure-api-key.<key>`` in
``Sec-WebSocket-Protocol`` or in ``Authorization`` need not look like a key, and frames carry
tokens and transcripts, so :class:`WireRedactionFilter` rewrites those records by their shape:

- a header line (``"< %s: %s"`` / ``"> %s: %s"``) keeps the header's name; the value of a
  credential-bearing header is replaced, and credential subprotocols lose their credential;
- a frame line (``"< %s"`` / ``"> %s"`` with a frame) becomes the frame's kind and length.

:class:`MeetingIdFilter` keeps meeting ids (which open a meeting's transcript to its owner's
key) out of log lines: each is replaced by ``mtg#`` and a digest salted per process, so lines
about one meeting can still be told apart. ``observability.log_ids`` turns it off.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from typing import Any

from hark.security.auth import SUBPROTOCOL_PREFIX

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
_HEADER_FORMATS = frozenset({"< %s: %s", "> %s: %s"})
_FRAME_FORMATS = frozenset({"< %s", "> %s"})
_SUBPROTOCOL_CREDENTIAL = re.compile(re.escape(SUBPROTOCOL_PREFIX) + r"[^\s,;'\"]*")
REDACTED = "[redacted]"


def redact_subprotocols(text: str) -> str:
    return _SUBPROTOCOL_CREDENTIAL.sub(SUBPROTOCOL_PREFIX + REDACTED, text)


def _frame_summary(frame: Any) -> str | None:
    """``TEXT [123 bytes]`` for a websockets Frame; None for anything else."""
    opcode = getattr(frame, "opcode", None)
    data = getattr(frame, "data", None)
    if opcode is None or not isinstance(data, bytes | bytearray | memoryview):
        return None
    return f"{getattr(opcode, 'name', opcode)} [{len(data)} bytes]"


class WireRedactionFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg, args = record.msg, record.args
        if isinstance(msg, str) and isinstance(args, tuple):
            if msg in _HEADER_FORMATS and len(args) == 2:
                name, value = str(args[0]), str(args[1])
                if name.lower() in SECRET_HEADERS:
                    value = REDACTED
                record.args = (name, redact_subprotocols(value))
            elif msg in _FRAME_FORMATS and len(args) == 1:
                summary = _frame_summary(args[0])
                if summary is not None:
                    record.args = (summary,)
        # Anywhere else (a list of offered subprotocols, an exception message ...): the whole line.
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it itself
            return True
        if SUBPROTOCOL_PREFIX in message:
            record.msg, record.args = redact_subprotocols(message), ()
        return True


_MEETING_ID = re.compile(r"\bmtg_[0-9a-f]{24}\b")


class MeetingIdFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._salt = secrets.token_bytes(16)

    def digest(self, meeting_id: str) -> str:
        return "mtg#" + hashlib.sha256(self._salt + meeting_id.encode()).hexdigest()[:10]

    def _sub(self, text: str) -> str:
        return _MEETING_ID.sub(lambda m: self.digest(m.group(0)), text)

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in list(vars(record).items()):  # ``meeting``, ``meeting_id`` ... fields
            if isinstance(value, str) and "mtg_" in value and name not in ("msg", "message"):
                setattr(record, name, self._sub(value))
        if isinstance(record.msg, str) and "mtg_" in record.msg:
            record.msg = self._sub(record.msg)
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "mtg_" in a for a in record.args):
            record.args = tuple(self._sub(a) if isinstance(a, str) else a for a in record.args)
        return True


def install(handler: logging.Handler, *, log_ids: bool = False) -> None:
    """Attach the filters to ``handler`` (every record, from any logger, passes through it)."""
    handler.addFilter(WireRedactionFilter())
    if not log_ids:
        handler.addFilter(MeetingIdFilter())
