"""The thread that owns the parent's end of one worker's pipe."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from hark.workers.proto import Call, Chunk, FromChild


@dataclass(frozen=True, slots=True)
class Broken:
    """Not on the wire: the courier could not read what the child sent."""

    reason: str


Delivery = FromChild | Broken


class Courier(threading.Thread):
    """Sends calls to one worker and posts what it says to the event loop.

    A pipe write blocks until the child reads (audio and PCM exceed the pipe buffer) and a read
    blocks until a whole pickled message has arrived, so a stopped or hung child would freeze
    the event loop. Only this thread waits; what it receives reaches the loop through
    ``call_soon_threadsafe``. The protocol is strictly turn by turn, so one thread does both."""

    def __init__(
        self, conn: Connection, loop: asyncio.AbstractEventLoop, deliver: Callable[[Delivery], None]
    ) -> None:
        super().__init__(name="hark-worker-courier", daemon=True)
        self._conn = conn
        self._loop = loop
        self._deliver = deliver
        self._calls: queue.SimpleQueue[Call | None] = queue.SimpleQueue()

    def send(self, call: Call) -> None:
        self._calls.put(call)

    def stop(self) -> None:
        """Close the pipe once the current exchange ends (at once when idle): the child exits."""
        self._calls.put(None)

    def run(self) -> None:
        try:
            self._post(self._conn.recv())  # Ready or Failed
            while (call := self._calls.get()) is not None:
                self._conn.send(call)
                while isinstance(message := self._conn.recv(), Chunk):  # a streamed piece: more follow
                    self._post(message)
                self._post(message)
        except (EOFError, OSError):
            pass  # the child is gone; its sentinel tells the pool
        except Exception as exc:  # an unreadable message: the pool retires the worker
            self._post(Broken(f"{type(exc).__name__}: {exc}"))
        finally:
            self._conn.close()

    def _post(self, message: Delivery) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._deliver, message)
