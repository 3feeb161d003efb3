"""Silence uvicorn's error record after a handshake the guard refused on purpose.

uvicorn's websockets-sansio protocol logs "ASGI callable returned without completing handshake."
at ERROR after every denial response (Kludex/uvicorn PR #3138, open). The filter drops that
record only when the guard itself just sent a denial on that connection.
"""

from __future__ import annotations

import contextvars
import logging

_denied: contextvars.ContextVar[bool] = contextvars.ContextVar("hark_ws_denied", default=False)


def mark_denied() -> None:
    """Called by the guard as it refuses this connection's upgrade."""
    _denied.set(True)


def install_denial_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialLogFilter) for f in logger.filters):
        logger.addFilter(_DenialLogFilter())


class _DenialLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_denied.get() and record.getMessage().startswith("ASGI callable returned without"))
