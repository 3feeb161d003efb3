"""Reading events with the ``wyoming`` library's own framing, bounded.

The library reads a header line, then ``data_length`` and ``payload_length`` bytes, trusting
both lengths: a client could announce a terabyte and hark would buffer it. :class:`BoundedReader`
hands the library a reader that refuses any read larger than the limit before reading a byte;
the header line is bounded by the stream's own ``limit``.
"""

from __future__ import annotations

import asyncio
from typing import cast

from hark.transports.wyoming.errors import WyomingError
from wyoming.event import Event, async_read_event


class BoundedReader:
    """The two reads ``async_read_event`` makes, each refused past ``limit`` bytes."""

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        self._reader = reader
        self.limit = limit
        self.ended = False
        """The last header read found the end of the stream (not a malformed line)."""

    async def readline(self) -> bytes:
        self.ended = False
        line = await self._reader.readline()  # ValueError past the stream's limit
        self.ended = not line
        return line

    async def readexactly(self, n: int) -> bytes:
        if not isinstance(n, int) or n > self.limit:
            raise WyomingError(
                "event_too_large", f"an event's data or payload exceeds {self.limit} bytes", fatal=True
            )
        return await self._reader.readexactly(n)


async def read_event(reader: BoundedReader) -> Event | None:
    """The next event; None at the end of the stream. Raises a fatal :class:`WyomingError` for
    an oversized or malformed event (the stream cannot be resynchronised after either)."""
    try:
        event = await async_read_event(cast(asyncio.StreamReader, reader))
    except asyncio.IncompleteReadError:
        return None  # the client went away mid-event
    except (KeyError, TypeError, AttributeError) as exc:
        # A header without "type", lengths or data of the wrong JSON type.
        raise WyomingError("invalid_event", "malformed event header", fatal=True) from exc
    if event is None and not reader.ended:
        # The library returns None for a header that is not JSON or a line over the limit.
        raise WyomingError("invalid_event", "malformed or oversized event header", fatal=True)
    if event is not None and not isinstance(event.data, dict):
        raise WyomingError("invalid_event", "event data must be a JSON object", fatal=True)
    return event
