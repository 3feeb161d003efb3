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
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import SENTENCE
from tests.js_workspace import EXAMPLE, ROOT, npm
from tests.servers import HarkProcess, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

NEXT_BIN = ROOT / "node_modules" / "next" / "dist" / "bin" / "next"
# lead, speech, a gap the whole reply fits in, speech, a gap shorter than the reply, speech, rest.
GAPS_S = (0.5, 7.0, 2.5, 6.0)


@pytest.fixture(scope="module")
def conversation_wav(espeak_path: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kit-speech")
    raw = folder / "raw.wav"
    subprocess.run(
        [espeak_path, "-v", "en-us", "-s", "150", "-w", str(raw), SENTENCE],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with wave.open(str(raw), "rb") as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    silence = [b"\0\0" * int(rate * s) for s in GAPS_S]
    out = folder / "conversation.wav"
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(silence[0] + frames + silence[1] + frames + silence[2] + frames + silence[3])
    return out


@pytest.fixture(scope="module")
def example_app(js_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`next build` once, then `next start` beside a hark that lets the app's origin in."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    npm("run", "build", cwd=EXAMPLE, timeout=600)
    logs = tmp_path_factory.mktemp("kit")
    env = {"HARK_SECURITY_ALLOWED_ORIGINS": f'["{origin}"]', "HARK_TTS_NOISE_W_SCALE": "0"}
    with HarkProcess(env=env, log_path=logs / "hark.log") as hark:
        app_env = {
            **os.environ,
            "HARK_URL": hark.base_url,
            "HARK_PUBLIC_URL": hark.base_url,
            "NEXT_TELEMETRY_DISABLED": "1",
        }
        with open(logs / "next.log", "wb") as log:
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
                    assert proc.poll() is None, (logs / "next.log").read_text()
                    try:
                        if httpx.get(origin + "/", timeout=2).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, "next start did not answer"
                    time.sleep(0.2)
                yield origin
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)


def _kit(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => JSON.parse(JSON.stringify(window.harkExample))")
    return state


# The module's fixture runs `next build` (about 70 s alone on 2 cores, 2-3 minutes on a busy
# machine) and starts its own hark; the conversation itself takes about a minute.
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
    expect(page.get_by_test_id("transport")).to_have_text(re.compile("WebRTC|WebSocket"))

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

    # The third utterance starts while the second reply plays: playback stops, the reply is cut.
    page.wait_for_function(
        """() => window.harkExample.truncation !== null
               || (window.harkExample.transport === "webrtc"
                   && window.harkExample.transcripts.filter((t) => t.role === "user").length >= 3)""",
        timeout=90_000,
    )
    page.wait_for_function("() => !window.harkExample.playing", timeout=5_000)
    kit = _kit(page)
    if kit["transport"] == "websocket":
        assert kit["truncation"]["audioEndMs"] > 0, kit["truncation"]
    assert kit["error"] is None, kit["error"]

    start.click()
    expect(start).to_have_text("Start")
    expect(status).to_have_attribute("data-status", "closed")
    assert errors == [], errors
