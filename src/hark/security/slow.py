"""Slow clients at the HTTP layer: a deadline for a request's headers.

uvicorn bounds the idle time between keep-alive requests (``timeout_keep_alive``), but not how
long a client may take to send a request's headers: a slow-header (slowloris) client that
dribbles a byte now and then, or one that connects and says nothing, holds its connection
forever. :func:`http_protocol` returns uvicorn's httptools protocol with a timer that starts
when the connection is made (and again after each response) and closes the connection unless a
request's headers are complete within ``header_timeout_s``. WebSockets are covered up to their
upgrade (the upgrade request's headers); after it, the guard's idle timeout applies.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("hark.security")


class _HeaderDeadline:
    """Mixed in before uvicorn's HttpToolsProtocol."""

    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: Any

    def _arm(self, delay: float) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(delay, self._header_timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        cycle = getattr(self, "cycle", None)
        if cycle is not None and not cycle.response_complete:
            return  # a (pipelined) request is being answered: its headers did arrive
        if self.transport is not None and not self.transport.is_closing():
            log.info("connection closed", extra={"reason": "header_timeout"})
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm(self.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        # The next request on this connection: uvicorn's keep-alive timer covers the silence
        # before it starts; this covers its headers once it has.
        if self.transport is not None and not self.transport.is_closing():
            keep_alive = float(getattr(self, "timeout_keep_alive", 0.0) or 0.0)
            self._arm(keep_alive + self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


def http_protocol(header_timeout_s: float) -> type[asyncio.Protocol] | str:
    """uvicorn's ``http`` setting: httptools with a header deadline (``auto`` without httptools)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # uvicorn without the [standard] extra
        log.warning("httptools is not installed: slow-header clients are not timed out")
        return "auto"
    return type(
        "HarkHttpToolsProtocol",
        (_HeaderDeadline, HttpToolsProtocol),
        {"header_timeout_s": header_timeout_s},
    )
