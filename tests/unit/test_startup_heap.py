"""The serve path freezes what start-up built, once the lifespan is done, before serving."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from hark.cli import SERVING_GC_THRESHOLDS, freeze_startup_heap, listening_socket, prepare_serving_heap
from hark.drain import Drainer, DrainingServer


@pytest.fixture
def unfrozen() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_startup_garbage_is_collected_and_the_rest_frozen(unfrozen: None) -> None:
    garbage = Cycle()
    gone = weakref.ref(garbage)
    del garbage
    kept = Cycle()
    frozen = freeze_startup_heap()
    assert gone() is None
    # Frozen objects can still be freed (by another thread of the test process, say), never added.
    assert 0 < gc.get_freeze_count() <= frozen
    assert kept.me is kept


def test_serving_freezes_the_heap_then_raises_the_thresholds(unfrozen: None) -> None:
    assert gc.get_threshold() != SERVING_GC_THRESHOLDS
    prepare_serving_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == SERVING_GC_THRESHOLDS
    assert gc.get_threshold() == SERVING_GC_THRESHOLDS
    assert SERVING_GC_THRESHOLDS[0] > 700  # fewer young collections than Python's default


def test_the_hook_runs_after_the_lifespan_and_before_serving(unfrozen: None) -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                seen.append("lifespan started")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def on_started() -> None:
        seen.append(f"hook ({len(seen)} before)")
        prepare_serving_heap()
        server.should_exit = True  # stop at once: nothing to serve

    config = uvicorn.Config(app, lifespan="on", log_config=None)
    server = DrainingServer(config, Drainer(1.0), on_started=on_started)
    server.run(sockets=[listening_socket("127.0.0.1", 0)])
    assert seen == ["lifespan started", "hook (1 before)"]
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == SERVING_GC_THRESHOLDS
