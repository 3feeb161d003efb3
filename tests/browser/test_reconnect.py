"""The page on the client core reconnects after a dropped connection and resumes with hark's
single-use resume token: `hark.resume` is the first event on the new connection."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.browser.page_server import page_app
from tests.servers import ThreadedServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser


class DroppingServer:
    """First connection: hands out a resume token, then drops (1011). Later ones: stay up."""

    def __init__(self) -> None:
        self.connections: list[list[dict[str, Any]]] = []
        self.lock = threading.Lock()

    def first_events(self) -> list[list[str]]:
        with self.lock:
            return [[str(e.get("type")) for e in conn[:2]] for conn in self.connections]

    def app(self) -> Starlette:
        return page_app(WebSocketRoute("/v1/realtime", self.realtime))

    async def realtime(self, ws: WebSocket) -> None:
        await ws.accept()
        received: list[dict[str, Any]] = []
        with self.lock:
            self.connections.append(received)
            first = len(self.connections) == 1
        await ws.send_text(
            json.dumps({"type": "session.created", "session": {"type": "realtime", "id": "s1"}})
        )
        try:
            while True:
                event = json.loads(await ws.receive_text())
                with self.lock:
                    received.append(event)
                if event.get("type") == "session.update":
                    await ws.send_text(
                        json.dumps({"type": "hark.resume_token", "token": "rt_1", "expires_at": 4e9})
                    )
                    if first:
                        await asyncio.sleep(0.2)
                        await ws.close(code=1011, reason="instance going away")
                        return
                if event.get("type") == "hark.resume":
                    await ws.send_text(
                        json.dumps({"type": "hark.resumed", "previous_session_id": "s1", "items": 2})
                    )
        except WebSocketDisconnect:
            pass


@pytest.fixture
def dropping() -> Iterator[tuple[DroppingServer, str]]:
    scripted = DroppingServer()
    with ThreadedServer(scripted.app()) as server:
        yield scripted, server.base_url


def test_the_page_reconnects_and_resumes_with_the_token(
    dropping: tuple[DroppingServer, str],
    launch_chromium: Callable[..., Browser],
    watch_errors: Callable[[Page], list[str]],
) -> None:
    from playwright.sync_api import expect

    scripted, base_url = dropping
    browser = launch_chromium("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    page = browser.new_context(permissions=["microphone"]).new_page()
    errors = watch_errors(page)
    page.goto(base_url + "/")
    page.get_by_test_id("start-button").click()
    page.wait_for_function("() => (window.hark.eventCounts['hark.resumed'] || 0) > 0", timeout=20_000)
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "connected")
    first, second = scripted.first_events()[:2]
    assert first[0] == "session.update"
    assert second == ["hark.resume", "session.update"]
    with scripted.lock:
        assert scripted.connections[1][0]["token"] == "rt_1"
    expect(page.get_by_test_id("start-button")).to_have_text("Stop")
    assert errors == [], errors
