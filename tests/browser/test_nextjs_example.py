"""The Next.js example (examples/nextjs) built and started, driven in headless Chromium with a
spoken fake microphone against a real `hark serve`: the client kit end to end.

The microphone says the sentence, waits long enough for the whole reply, says it again and then
speaks over the second reply: transcript, played reply, latency figures and barge-in in one run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.js_workspace import EXAMPLE, ROOT
from tests.servers import HarkProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

NEXT_BIN = ROOT / "node_modules" / "next" / "dist" / "bin" / "next"


@pytest.fixture(scope="module")
def example_app(
    example_build: Path,
    web_app_origin: str,
    hark_server: HarkProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """`next start` of the built app beside the shared hark, which lets the app's origin in (the
    browser POSTs its WebRTC offer to hark from the app's origin: CORS)."""
    port = int(web_app_origin.rsplit(":", 1)[1])
    log_path = tmp_path_factory.mktemp("kit") / "next.log"
    app_env = {
        **os.environ,
        "HARK_URL": hark_server.base_url,
        "HARK_PUBLIC_URL": hark_server.base_url,
        "NEXT_TELEMETRY_DISABLED": "1",
    }
    with open(log_path, "wb") as log:
        # `next start` in this process group (npx would leave its child behind on terminate).
        proc = subprocess.Popen(
            ["node", str(NEXT_BIN), "start", "-p", str(port), "-H", "127.0.0.1"],
            cwd=EXAMPLE,
            env=app_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(web_app_origin + "/", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "next start did not answer"
                time.sleep(0.2)
            yield web_app_origin
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)


def _kit(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => JSON.parse(JSON.stringify(window.harkExample))")
    return state


# `next build` (about 70 s alone on 2 cores, 2-3 minutes on a busy machine) runs only when the
# app or the packages changed; the conversation itself takes about a minute.
@pytest.mark.timeout(600)
def test_the_example_app_talks_and_stops_on_barge_in(
    example_app: str,
    conversation_wav: Path,
    launch_chromium: Callable[..., Browser],
    watch_errors: Callable[[Page], list[str]],
) -> None:
    from playwright.sync_api import expect

    browser = launch_chromium(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={conversation_wav}",
    )
    # A phone-sized screen.
    context = browser.new_context(viewport={"width": 390, "height": 844}, permissions=["microphone"])
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(example_app + "/")
    start = page.get_by_test_id("start-button")
    expect(start).to_have_text("Start")
    start.click()
    status = page.get_by_test_id("connection-status")
    expect(status).to_have_attribute("data-status", "connected", timeout=20_000)
    # Over WebRTC, from another origin: hark answers the offer's CORS preflight.
    expect(page.get_by_test_id("transport")).to_have_text("WebRTC")

    # What was said, transcribed and shown; the reply shown and played.
    expect(
        page.get_by_test_id("transcript-user").filter(has_text=re.compile("weather", re.I)).first
    ).to_be_visible(timeout=90_000)
    page.wait_for_function(
        """() => window.harkExample.transcripts.some((t) => t.role === "assistant" && t.text.trim())
               && window.harkExample.playedMs > 0""",
        timeout=60_000,
    )
    expect(page.get_by_test_id("transcript-assistant").first).not_to_be_empty()

    # Both latency figures render: the one measured here and the server's, named apart.
    ms = re.compile(r"^\d+ ms$")
    expect(page.get_by_test_id("latency-heard")).to_have_text(ms, timeout=30_000)
    expect(page.get_by_test_id("latency-server")).to_have_text(ms, timeout=30_000)

    # The interruption starts while the second reply plays: the server empties the track,
    # cuts the reply at what played (conversation.item.truncated) and playback stops.
    page.wait_for_function(
        """() => window.harkExample.transcripts.some((t) => t.role === "assistant" && t.interrupted)""",
        timeout=90_000,
    )
    page.wait_for_function("() => !window.harkExample.playing", timeout=5_000)
    kit = _kit(page)
    assert kit["transport"] == "webrtc"
    assert kit["error"] is None, kit["error"]

    start.click()
    expect(start).to_have_text("Start")
    expect(status).to_have_attribute("data-status", "closed")
    assert errors == [], errors
