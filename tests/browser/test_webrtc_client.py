"""The page's WebRTC path (OpenAI's flow) against a scripted answerer built on aiortc: the SDP
offer POSTed to /v1/realtime/calls with the client secret, events both ways on "oai-events",
reply audio on the track, heard in the page; a speech_started silences the track at once.

hark's own /v1/realtime/calls comes with the WebRTC transport; until then this pins the client
side of the flow. Skipped where aiortc is not installed.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.browser.page_server import page_app
from tests.servers import ThreadedServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

aiortc = pytest.importorskip("aiortc")
av = pytest.importorskip("av")

pytestmark = pytest.mark.browser
RATE = 48000
FRAME = 960  # 20 ms


class Tone(aiortc.MediaStreamTrack):  # type: ignore[misc]  # aiortc is untyped
    """A 440 Hz tone in real-time 20 ms frames."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.start: float | None = None

    async def recv(self) -> Any:
        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.sent / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(FRAME) + self.sent) / RATE
        samples = (0.3 * 32767 * np.sin(2 * math.pi * 440 * t)).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.sent
        frame.time_base = fractions.Fraction(1, RATE)
        self.sent += FRAME
        return frame


class Answerer:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.authorization: str | None = None
        self.content_type: str | None = None
        self.lock = threading.Lock()
        self.pcs: list[Any] = []
        self.channel: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def send_soon(self, event: dict[str, Any]) -> None:
        """Send on the data channel from the test's thread (aiortc lives on the server's loop)."""
        assert self.loop is not None and self.channel is not None
        self.loop.call_soon_threadsafe(self.channel.send, json.dumps(event))

    def events(self) -> list[str]:
        with self.lock:
            return [str(e.get("type")) for e in self.received]

    def app(self) -> Starlette:
        async def secret(request: Request) -> JSONResponse:
            return JSONResponse({"value": "ek_test", "expires_at": int(time.time()) + 60})

        return page_app(
            Route("/v1/realtime/client_secrets", secret, methods=["POST"]),
            Route("/v1/realtime/calls", self.calls, methods=["POST"]),
        )

    async def calls(self, request: Request) -> Response:
        self.authorization = request.headers.get("authorization")
        self.content_type = request.headers.get("content-type")
        offer = (await request.body()).decode()
        self.loop = asyncio.get_running_loop()
        pc = aiortc.RTCPeerConnection()
        self.pcs.append(pc)
        pc.addTrack(Tone())

        @pc.on("datachannel")  # type: ignore[misc]
        def on_channel(channel: Any) -> None:
            self.channel = channel

            def send(event: dict[str, Any]) -> None:
                channel.send(json.dumps(event))

            send({"type": "session.created", "session": {"type": "realtime", "id": "sess_rtc"}})
            send({"type": "hark.state", "state": "speaking"})

            @channel.on("message")  # type: ignore[misc]
            def on_message(message: str) -> None:
                event = json.loads(message)
                with self.lock:
                    self.received.append(event)
                if event.get("type") == "session.update":
                    send({"type": "session.updated", "session": {"type": "realtime", "id": "sess_rtc"}})

        await pc.setRemoteDescription(aiortc.RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return Response(
            pc.localDescription.sdp,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": "/v1/realtime/calls/rtc_test"},
        )


@pytest.fixture
def answerer() -> Iterator[tuple[Answerer, str]]:
    scripted = Answerer()
    with ThreadedServer(scripted.app()) as server:
        yield scripted, server.base_url


def test_the_page_calls_over_webrtc_when_offered(
    answerer: tuple[Answerer, str],
    launch_chromium: Callable[..., Browser],
    watch_errors: Callable[[Page], list[str]],
) -> None:
    from playwright.sync_api import expect

    scripted, base_url = answerer
    browser = launch_chromium("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    page = browser.new_context(permissions=["microphone"]).new_page()
    errors = watch_errors(page)
    page.goto(base_url + "/")
    page.get_by_test_id("start-button").click()
    expect(page.get_by_test_id("transport")).to_have_text("WebRTC", timeout=20_000)
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "connected")
    # The offer carried the client secret, as OpenAI's flow does; the first event came back.
    assert scripted.authorization == "Bearer ek_test"
    assert (scripted.content_type or "").startswith("application/sdp")
    deadline = time.monotonic() + 10
    while "session.update" not in scripted.events() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scripted.events()[0] == "session.update"
    # No microphone audio as JSON over WebRTC: it goes on the track.
    assert "input_audio_buffer.append" not in scripted.events()
    # The reply track is heard in the page.
    page.wait_for_function("() => window.hark.playedMs > 0 && window.hark.playing", timeout=20_000)
    # The person speaks over the reply: the page silences the track at once, though this
    # answerer keeps sending it (hark's server stops it too; the cut here covers what is in flight).
    scripted.send_soon(
        {"type": "input_audio_buffer.speech_started", "item_id": "item_u1", "audio_start_ms": 0}
    )
    page.wait_for_function("() => !window.hark.playing", timeout=5_000)
    page.get_by_test_id("start-button").click()
    expect(page.get_by_test_id("transport")).to_be_hidden()
    assert errors == [], errors
