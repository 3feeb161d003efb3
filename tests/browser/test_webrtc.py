"""A real WebRTC call from Chromium to a real ``hark serve`` (echo mode) on loopback.

A bare page (``webrtc_call.html``, written as OpenAI's WebRTC guide writes a client) sends its
fake microphone (espeak-ng's question) on a track and reads events on the ``oai-events`` data
channel: the transcript arrives on the channel, the reply plays on the track (energy in
``getStats()``), speech over it (a second clip on the same sender) silences it, and the history
keeps only what played.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.speech import silence, speak, write_wav

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

PAGE = Path(__file__).with_name("webrtc_call.html")
SENTENCE = "What is the weather like today?"
"""One sentence: no pause inside it for the turn detector to end the turn at."""
INTERRUPTION = "Wait, stop. Tell me about Paris instead."


@pytest.fixture(scope="module")
def one_question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The question once, then silence long enough that Chromium's loop never repeats it here."""
    wav = tmp_path_factory.mktemp("webrtc") / "speech.wav"
    write_wav(wav, silence(500) + speak(SENTENCE) + silence(60_000))
    return wav


def _interruption_b64() -> str:
    clip = io.BytesIO()
    write_wav(clip, silence(200) + speak(INTERRUPTION) + silence(1500))
    return base64.b64encode(clip.getvalue()).decode()


def _events(page: Page, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(
        "(kind) => window.rtc.events.filter((e) => e.type === kind)", kind
    )
    return found


def _wait_event(page: Page, kind: str, timeout_s: float = 60.0) -> dict[str, Any]:
    page.wait_for_function(
        "([kind]) => window.rtc.error !== null || window.rtc.events.some((e) => e.type === kind)",
        arg=[kind],
        timeout=timeout_s * 1000,
    )
    assert page.evaluate("() => window.rtc.error") is None
    return _events(page, kind)[0]


def _energy(page: Page, start: float, end: float) -> float:
    total: float = page.evaluate(
        "([a, b]) => window.rtc.levels.filter((l) => l.t > a && l.t <= b).reduce((s, l) => s + l.energy, 0)",
        [start, end],
    )
    return total


def test_webrtc_call_transcript_reply_and_barge_in(
    one_question_wav: Path,
    launch_chromium: Callable[..., Browser],
    watch_errors: Callable[[Page], list[str]],
    hark_server: Any,
) -> None:
    browser = launch_chromium(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={one_question_wav}",
        "--disable-quic",
        "--allow-loopback-in-peer-connection",
    )
    context = browser.new_context(permissions=["microphone"])
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(hark_server.base_url + "/health")  # the call's origin is hark's own
    page.set_content(PAGE.read_text(encoding="utf-8"))
    page.evaluate("(base) => window.startCall(base, null)", hark_server.base_url)

    created = _wait_event(page, "session.created", 20)
    assert created["session"]["type"] == "realtime"

    # What was said, transcribed by the server, on the data channel.
    page.wait_for_function(
        """() => window.rtc.events.some((e) => e.type ===
             "conversation.item.input_audio_transcription.completed" && /weather/i.test(e.transcript))""",
        timeout=60_000,
    )
    transcript = next(
        e
        for e in _events(page, "conversation.item.input_audio_transcription.completed")
        if re.search(r"weather", e["transcript"], re.IGNORECASE)
    )

    # The reply plays on the track (no audio deltas on the channel); once it is heard, the
    # user speaks over it.
    page.wait_for_function(
        "(t) => window.rtc.events.some((e) => e.type === 'output_audio_buffer.started' && e._t > t)",
        arg=transcript["_t"],
        timeout=60_000,
    )
    started = next(e for e in _events(page, "output_audio_buffer.started") if e["_t"] > transcript["_t"])
    page.wait_for_function(
        "(t) => window.rtc.levels.some((l) => l.t > t && l.energy > 0)", arg=started["_t"], timeout=30_000
    )
    page.evaluate("(clip) => window.bargeIn(clip)", _interruption_b64())
    cleared = _wait_event(page, "output_audio_buffer.cleared", 30)
    assert cleared["response_id"] == started["response_id"]
    assert not _events(page, "response.output_audio.delta")
    assert _energy(page, started["_t"], cleared["_t"]) > 0.0

    # After the barge-in the track is silent until the next reply starts.
    page.wait_for_function(
        "(t) => window.rtc.levels.some((l) => l.t > t + 1500)", arg=cleared["_t"], timeout=10_000
    )
    later = [e["_t"] for e in _events(page, "output_audio_buffer.started") if e["_t"] > cleared["_t"]]
    quiet_end = min([cleared["_t"] + 1500, *later])
    before = _energy(page, started["_t"], cleared["_t"])
    after = _energy(page, cleared["_t"] + 300, quiet_end)
    assert after < before * 0.02, (before, after)

    # The history keeps only the words that played: the server cut the item itself.
    truncated = _wait_event(page, "conversation.item.truncated")
    assert truncated["audio_end_ms"] > 0
    page.evaluate(
        "(id) => window.send({type: 'conversation.item.retrieve', item_id: id})", truncated["item_id"]
    )
    item = _wait_event(page, "conversation.item.retrieved", 10)["item"]
    heard = item["content"][0]["transcript"].split()
    full = f"Echo mode. You said: {transcript['transcript'].strip()}".split()
    assert len(heard) < len(full), (heard, full)
    assert heard == full[: len(heard)]

    page.evaluate("() => window.hangUp()")
    assert not [e for e in errors if "favicon.ico" not in e], errors


AGENTS_BUNDLE = (
    Path(__file__).parents[1]
    / "conformance/js/node_modules/@openai/agents-realtime/dist/bundle/openai-realtime-agents.umd.js"
)


def test_openai_agents_sdk_webrtc_transport(
    one_question_wav: Path,
    launch_chromium: Callable[..., Browser],
    hark_server: Any,
) -> None:
    """The official Agents SDK's ``OpenAIRealtimeWebRTC``, pointed at hark with ``baseUrl``.

    In a browser the SDK accepts only keys starting with ``ek_`` (OpenAI's client secrets)
    unless ``useInsecureApiKey`` is set; hark's client secrets are JWTs, so the flag is set here
    (auth is off on this loopback server)."""
    if not AGENTS_BUNDLE.is_file():
        pytest.skip("tests/conformance/js/node_modules is not installed (make test installs it)")
    browser = launch_chromium(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={one_question_wav}",
        "--disable-quic",
        "--allow-loopback-in-peer-connection",
    )
    page = browser.new_context(permissions=["microphone"]).new_page()
    page.goto(hark_server.base_url + "/health")
    page.add_script_tag(path=str(AGENTS_BUNDLE))
    page.evaluate(
        """async (base) => {
          const sdk = window.OpenAIAgentsRealtime;
          window.sdk = { events: [], error: null };
          const agent = new sdk.RealtimeAgent({ name: "Assistant", instructions: "Be brief." });
          const transport = new sdk.OpenAIRealtimeWebRTC({
            baseUrl: base + "/v1/realtime/calls", useInsecureApiKey: true,
          });
          transport.on("*", (event) => window.sdk.events.push(event.type));
          const session = new sdk.RealtimeSession(agent, { transport, model: "hark" });
          session.on("error", (e) => { window.sdk.error = String(e && (e.error || e)); });
          window.sdk.session = session;
          await session.connect({ apiKey: "not-checked-on-loopback" });
          window.sdk.callId = transport.callId;
        }""",
        hark_server.base_url,
    )
    assert page.evaluate("() => window.sdk.callId").startswith("rtc_")
    page.wait_for_function(
        """() => window.sdk.session.history.some((i) => i.role === "user" && i.content.some(
             (c) => /weather/i.test(c.transcript || "")))""",
        timeout=60_000,
    )
    page.wait_for_function("() => window.sdk.events.includes('output_audio_buffer.started')", timeout=30_000)
    assert page.evaluate("() => window.sdk.error") is None
    page.evaluate("() => window.sdk.session.close()")
