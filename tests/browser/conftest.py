"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, and spoken test audio.

A missing browser, espeak-ng or Playwright skips these tests on a developer's machine; under CI
(``CI`` set) it fails them instead, so a broken CI image cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.js_workspace import example_build, js_workspace

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = ["example_build", "js_workspace"]

CHROMIUM = Path("/usr/bin/chromium")
BASE_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
]
SENTENCE = "Hello there. What is the weather like today?"
LEAD_SILENCE_S = 0.5
TRAIL_SILENCE_S = 5.0
# The conversation: the question twice, then words of the person's own over the second reply.
# Each is one breath: no sentence pause inside that hark's 300 ms server_vad could take for the
# end of the turn. The interruption shares no words with hark's echo of the question, so the
# self-speech guard (hark's own words heard back) cannot take it for a leak of the reply.
QUESTION = "What is the weather like today?"
INTERRUPTION = "Stop talking and tell me a story about the sea"
# lead, speech, a gap the whole reply fits in, speech, a gap shorter than the reply, speech, rest.
GAPS_S = (0.5, 7.0, 2.5, 6.0)


def require(ok: bool, reason: str) -> None:
    """Skip when a prerequisite is missing, or fail when running under CI."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required under CI: run `make test-deps`)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    require(
        CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK),
        f"{CHROMIUM} is not installed (apt-get install chromium)",
    )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require(False, "the playwright Python package is not installed (pip install -e '.[test]')")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def espeak_path() -> str:
    path = shutil.which("espeak-ng")
    require(path is not None, "espeak-ng is not installed (apt-get install espeak-ng)")
    assert path is not None
    return path


def _with_silence(src: Path, dst: Path, lead_s: float, trail_s: float) -> None:
    with wave.open(str(src), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(wav.getnframes())
    assert params.sampwidth == 2 and params.nchannels == 1, params
    pad = b"\0\0"
    with wave.open(str(dst), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(params.framerate)
        out.writeframes(pad * int(params.framerate * lead_s) + frames + pad * int(params.framerate * trail_s))


@pytest.fixture(scope="session")
def speech_wav(espeak_path: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16-bit mono speech of SENTENCE with silence around it (Chromium loops the file)."""
    folder = tmp_path_factory.mktemp("speech")
    raw = folder / "raw.wav"
    subprocess.run(
        [espeak_path, "-v", "en-us", "-s", "150", "-w", str(raw), SENTENCE],
        check=True,
        capture_output=True,
        timeout=60,
    )
    wav = folder / "speech.wav"
    _with_silence(raw, wav, LEAD_SILENCE_S, TRAIL_SILENCE_S)
    return wav


@pytest.fixture
def launch_chromium(chromium_path: str) -> Iterator[Callable[..., Browser]]:
    """launch_chromium(*extra_args) -> a headless Chromium, closed after the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browsers: list[Browser] = []

        def launch(*extra_args: str) -> Browser:
            browser = playwright.chromium.launch(
                executable_path=chromium_path, headless=True, args=[*BASE_ARGS, *extra_args]
            )
            browsers.append(browser)
            return browser

        try:
            yield launch
        finally:
            for browser in browsers:
                browser.close()


# The page asks for a client secret and tries WebRTC first; a server that offers neither answers
# 404/405 (or, cross-origin, no CORS headers) and the page falls back to the WebSocket. Chromium
# logs those answers as console errors; they are the expected fallback, not faults.
FALLBACK_PROBES = ("/v1/realtime/client_secrets", "/v1/realtime/calls")


def _is_fallback_probe(message: Any) -> bool:
    where = f"{message.location.get('url', '')} {message.text}"
    expected = "Failed to load resource" in message.text or "CORS policy" in message.text
    return expected and any(probe in where for probe in FALLBACK_PROBES)


def _watch_errors(page: Page) -> list[str]:
    errors: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error" and not _is_fallback_probe(message):
            errors.append(f"console.error: {message.text} ({message.location.get('url', '')})")

    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", on_console)
    return errors


@pytest.fixture
def watch_errors() -> Callable[[Page], list[str]]:
    """watch_errors(page) -> a live list of the page's uncaught exceptions and console errors."""
    return _watch_errors


@pytest.fixture(scope="session")
def conversation_wav(espeak_path: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """QUESTION twice, then INTERRUPTION: the whole first reply fits in the first gap; the
    interruption starts while the second reply is still playing (a barge-in)."""
    folder = tmp_path_factory.mktemp("kit-speech")

    def say(text: str, name: str) -> tuple[int, bytes]:
        raw = folder / name
        subprocess.run(
            [espeak_path, "-v", "en-us", "-s", "150", "-w", str(raw), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with wave.open(str(raw), "rb") as w:
            return w.getframerate(), w.readframes(w.getnframes())

    rate, question = say(QUESTION, "question.wav")
    _, interruption = say(INTERRUPTION, "interruption.wav")
    silence = [b"\0\0" * int(rate * s) for s in GAPS_S]
    out = folder / "conversation.wav"
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(silence[0] + question + silence[1] + question + silence[2] + interruption + silence[3])
    return out
