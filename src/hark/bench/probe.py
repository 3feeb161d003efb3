"""What stalls a benchmarked server: garbage-collector pauses and event-loop lag, recorded from
inside the ``hark serve`` process so the bench can say what a latency spike was.

Run as ``python -m hark.bench.probe PATH serve ...``: it installs the probe, then runs
``hark serve`` as usual. It writes JSON lines to PATH every half second:

- ``["gc", start, ms, generation]``: one collection, its start on the monotonic clock (the same
  clock as the bench client's, on one machine) and how long it held the interpreter;
- ``["lag", at, ms]``: every 10 ms a thread asks the event loop to run a callback
  (``call_soon_threadsafe``); the delay until it runs is the loop's lag at ``at`` (a callback or
  a GC pause holding the loop, or the loop waking late from its selector).

With ``HARK_BENCH_TRACE=1`` it also traces the way of a turn's last frame in and of its first
reply audio out (``hark.bench.hops``; one session, so the events need no session to match):

- ``["rx", at]``: a WebSocket read from the socket (uvicorn's protocol, before parsing);
- ``["push", start, end]``: the listener's ``push`` call that ended a turn (resampling, the VAD
  thread's round trip, the turn logic and the turn's start);
- ``["llm", at]`` and ``["tts", at]``: the scripted LLM's and TTS's stream first read (their
  delays count from there, so the pipeline's hop splits at these points);
- ``["queued", at]``: reply audio put in the session's outbox;
- ``["tx", at]``: a binary frame handed to the socket (after ``send_bytes``).

Bench-only: nothing in hark imports it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

LAG_INTERVAL_S = 0.01
FLUSH_S = 0.5


class Probe:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._events: list[list[Any]] = []
        self._lock = threading.Lock()
        self._gc_started = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)
        threading.Thread(target=self._run, name="hark-bench-probe", daemon=True).start()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._gc_started = now
            if self._loop is None:
                # The server's loop is made by uvicorn (uvloop or asyncio): a collection in the
                # loop's thread finds it. (Not gc.get_objects() from the probe's thread: that
                # exposes tuples still being built, and CPython then fails to resize them.)
                self._loop = asyncio._get_running_loop()
        else:
            took = round((now - self._gc_started) * 1000.0, 3)
            self._add(["gc", round(self._gc_started, 6), took, info["generation"]])

    def _add(self, event: list[Any]) -> None:
        with self._lock:
            self._events.append(event)

    def _ran(self, asked: float) -> None:
        self._add(["lag", round(asked, 6), round((time.monotonic() - asked) * 1000.0, 3)])

    def _run(self) -> None:
        flushed = time.monotonic()
        with self.path.open("a", encoding="utf-8") as out:
            while True:
                time.sleep(LAG_INTERVAL_S)
                if self._loop is not None and self._loop.is_closed():
                    self._loop = None
                if self._loop is not None:
                    try:
                        self._loop.call_soon_threadsafe(self._ran, time.monotonic())
                    except RuntimeError:  # closed: the server is stopping
                        self._loop = None
                if time.monotonic() - flushed >= FLUSH_S:
                    with self._lock:
                        events, self._events = self._events, []
                    out.writelines(json.dumps(e) + "\n" for e in events)
                    out.flush()
                    flushed = time.monotonic()


def install_trace(probe: Probe) -> None:
    """Wrap the places ``HARK_BENCH_TRACE`` reports (bench-only instrumentation of the
    server process: the wrappers add a clock read and an append to each call)."""
    from starlette.websockets import WebSocket
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    from hark.bench.fakes import ScriptedLLM, ScriptedTTS
    from hark.pipeline.listener import Listener
    from hark.pipeline.turns import TurnEvent
    from hark.transports.outbox import Outbox

    data_received = WebSocketsSansIOProtocol.data_received

    def traced_data_received(self: WebSocketsSansIOProtocol, data: bytes) -> None:
        probe._add(["rx", round(time.monotonic(), 6)])
        data_received(self, data)

    push = Listener.push

    async def traced_push(self: Listener, pcm: bytes) -> Any:
        start = time.monotonic()
        boundaries = await push(self, pcm)
        if any(b.event is TurnEvent.SPEECH_STOPPED for b in boundaries):
            probe._add(["push", round(start, 6), round(time.monotonic(), 6)])
        return boundaries

    stream = ScriptedLLM.stream

    async def traced_stream(self: ScriptedLLM, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        probe._add(["llm", round(time.monotonic(), 6)])  # the fake's clock starts here too
        async for token in stream(self, *args, **kwargs):
            yield token

    synthesize = ScriptedTTS.synthesize

    async def traced_synthesize(self: ScriptedTTS, text: str) -> AsyncIterator[bytes]:
        probe._add(["tts", round(time.monotonic(), 6)])
        async for chunk in synthesize(self, text):
            yield chunk

    put_audio = Outbox.put_audio

    def traced_put_audio(self: Outbox, pcm: bytes, *, audio_of: str) -> None:
        probe._add(["queued", round(time.monotonic(), 6)])
        put_audio(self, pcm, audio_of=audio_of)

    send_bytes = WebSocket.send_bytes

    async def traced_send_bytes(self: WebSocket, data: bytes) -> None:
        await send_bytes(self, data)
        probe._add(["tx", round(time.monotonic(), 6)])

    WebSocketsSansIOProtocol.data_received = traced_data_received  # type: ignore[method-assign]
    Listener.push = traced_push  # type: ignore[method-assign]
    ScriptedLLM.stream = traced_stream  # type: ignore[method-assign]
    ScriptedTTS.synthesize = traced_synthesize  # type: ignore[method-assign]
    Outbox.put_audio = traced_put_audio  # type: ignore[method-assign]
    WebSocket.send_bytes = traced_send_bytes  # type: ignore[method-assign,assignment]


def parse(text: str) -> Iterator[list[Any]]:
    """The events in some of the probe's lines."""
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue  # a line cut by a write in progress


def main() -> int:
    path, argv = Path(sys.argv[1]), sys.argv[2:]
    probe = Probe(path)
    probe.install()
    if os.environ.get("HARK_BENCH_TRACE") == "1":
        install_trace(probe)
    from hark.cli import main as hark_main

    return hark_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
