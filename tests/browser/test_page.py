"""The browser page end to end: Chromium's fake microphone speaks to a real hark (echo mode).

Chromium plays ``conversation_wav`` (espeak-ng: the question twice, then other words over the
second reply) as the microphone. The page connects over WebRTC as it does by default (a client
secret, then the offer to /v1/realtime/calls?hark_events=1), shows the user's words and the
assistant's reply, plays the reply from the track, and falls silent when the person speaks over
it (the server empties the track: ``output_audio_buffer.cleared``), without a single page error.
A hark with WebRTC turned off shows the WebSocket fallback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.servers import HarkProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

USER_WORDS = re.compile(r"weather", re.IGNORECASE)


def _hark(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => JSON.parse(JSON.stringify(window.hark))")
    return state


def test_talk_to_hark_in_the_browser_over_webrtc(
    chromium_path: str,
    conversation_wav: Path,
    launch_chromium: Callable[..., Browser],
    watch_errors: Callable[[Page], list[str]],
    hark_server: Any,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    browser = launch_chromium(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={conversation_wav}",
    )
    context = browser.new_context(viewport={"width": 1100, "height": 860}, permissions=["microphone"])
    page = context.new_page()
    errors = watch_errors(page)

    page.goto(hark_server.base_url + "/")
    state = page.get_by_test_id("state-indicator")
    start = page.get_by_test_id("start-button")
    expect(state).to_have_attribute("data-state", "idle")
    expect(start).to_have_text("Start")

    start.click()
    expect(start).to_have_text("Stop", timeout=15_000)
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-status", "connected")
    expect(page.get_by_test_id("transport")).to_have_text("WebRTC")

    # What was said, transcribed by the server and shown as a final user turn.
    page.wait_for_function(
        """() => window.hark.transcripts.some(
               (t) => t.role === "user" && t.final && /weather/i.test(t.text))""",
        timeout=90_000,
    )
    expect(page.get_by_test_id("transcript-user").filter(has_text=USER_WORDS).first).to_be_visible()

    # The reply: text in an assistant bubble, and audio received and played.
    page.wait_for_function(
        """() => window.hark.transcripts.some((t) => t.role === "assistant" && t.text.trim().length > 0)
               && window.hark.playedMs > 0""",
        timeout=60_000,
    )
    assistant = page.get_by_test_id("transcript-assistant").first
    expect(assistant).to_be_visible()
    assert assistant.inner_text().strip()

    hark = _hark(page)
    assert hark["transport"] == "webrtc"
    # Over WebRTC the microphone and the reply are tracks: no audio as JSON either way.
    assert hark["receivedAudioBytes"] == 0
    assert hark["sentAudioBytes"] == 0
    assert "input_audio_buffer.append" not in hark["sentEvents"]
    assert hark["playedMs"] > 0
    assert hark["sentEvents"][0] == "session.update"
    # hark's own events arrive because the page asked for them (?hark_events=1).
    for event_type in (
        "session.created",
        "hark.llm_status",
        "input_audio_buffer.speech_started",
        "output_audio_buffer.started",
    ):
        assert event_type in hark["eventCounts"], event_type
    assert hark["errors"] == [], hark["errors"]

    # The fixture's server has no LLM: the banner shows the server's message and the setting.
    assert hark["llmStatus"]["mode"] == "echo"
    banner = page.get_by_test_id("llm-banner")
    expect(banner).to_be_visible()
    expect(page.get_by_test_id("llm-banner-message")).to_have_text(hark["llmStatus"]["message"])
    expect(page.get_by_test_id("llm-banner-setting")).to_have_text(hark["llmStatus"]["setting"])
    expect(page.get_by_test_id("llm-banner-setting")).to_contain_text("HARK_LLM_BASE_URL")

    # Per-turn latency figures arrived and are shown.
    page.wait_for_function("() => window.hark.latency.length > 0", timeout=30_000)
    latency = page.get_by_test_id("latency")
    expect(latency.locator('dd[data-key="stt_ms"]')).to_have_text(re.compile(r"\d+(\.\d+)? m?s"))
    expect(latency.locator('dd[data-key="voice_to_voice_ms"]')).to_have_text(re.compile(r"\d+(\.\d+)? m?s"))
    # The figure a person is shown first is measured in the page: end of speech → first sample played.
    page.wait_for_function(
        "() => window.hark.heard.some((t) => typeof t.heardMs === 'number')", timeout=30_000
    )
    expect(page.get_by_test_id("latency-heard")).to_have_text(re.compile(r"\d+(\.\d+)? m?s"))

    # The interruption starts while the second reply plays: the server empties the track
    # and the page stops playing it.
    page.wait_for_function(
        "() => (window.hark.eventCounts['output_audio_buffer.cleared'] || 0) > 0", timeout=90_000
    )
    page.wait_for_function("() => !window.hark.playing", timeout=5_000)
    # The server cut the reply at what played (conversation.item.truncated); a cut reply the
    # page shows is marked interrupted.
    page.wait_for_function(
        """() => window.hark.truncations.length > 0 && window.hark.truncations.every((t) => {
               const node = document.querySelector(`[data-item-id="${t.item_id}"]`);
               return !node || node.dataset.state === "interrupted";
           })""",
        timeout=10_000,
    )
    assert _hark(page)["errors"] == []

    shot = tmp_path / "hark-page.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 0

    start.click()
    expect(state).to_have_attribute("data-state", "idle")
    expect(start).to_have_text("Start")
    assert _hark(page)["running"] is False

    assert errors == [], errors


@pytest.fixture(scope="module")
def hark_without_webrtc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HarkProcess]:
    log = tmp_path_factory.mktemp("hark-no-webrtc") / "server.log"
    with HarkProcess(env={"HARK_WEBRTC_ENABLED": "false"}, log_path=log) as server:
        yield server


def test_the_page_falls_back_to_the_websocket_without_webrtc(
    speech_wav: Path,
    launch_chromium: Callable[..., Browser],
    watch_errors: Callable[[Page], list[str]],
    hark_without_webrtc: HarkProcess,
) -> None:
    """A hark with WebRTC turned off: the offer finds no route, the page says WebSocket, and a
    turn goes through with audio as JSON both ways."""
    from playwright.sync_api import expect

    browser = launch_chromium(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_wav}",
    )
    page = browser.new_context(permissions=["microphone"]).new_page()
    errors = watch_errors(page)
    page.goto(hark_without_webrtc.base_url + "/")
    page.get_by_test_id("start-button").click()
    expect(page.get_by_test_id("transport")).to_have_text("WebSocket", timeout=15_000)
    page.wait_for_function(
        """() => window.hark.transcripts.some((t) => t.role === "user" && t.final && /weather/i.test(t.text))
               && window.hark.transcripts.some((t) => t.role === "assistant" && t.text.trim().length > 0)
               && window.hark.playedMs > 0""",
        timeout=90_000,
    )
    hark = _hark(page)
    assert hark["transport"] == "websocket"
    assert hark["sentAudioBytes"] > 0
    assert hark["receivedAudioBytes"] > 0
    assert hark["errors"] == [], hark["errors"]
    page.get_by_test_id("start-button").click()
    expect(page.get_by_test_id("start-button")).to_have_text("Start")
    assert errors == [], errors
