"""WebSocket close codes hark uses, one meaning each."""

from __future__ import annotations

CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHORIZED = 4001
CLOSE_IDLE = 1000
"""Suggested for the idle timeout (with reason ``idle timeout``): a normal end, no reconnect."""
CLOSE_SLOW_CONSUMER = 1008
"""Suggested when the outbound budget says CLOSE (reason ``client too slow``)."""

CLOSE_FOR_STATUS = {401: CLOSE_UNAUTHORIZED, 429: CLOSE_TRY_AGAIN, 503: CLOSE_TRY_AGAIN}
"""A refused upgrade's close code, where the server cannot answer it with an HTTP status."""
