"""The audio worklets in a real browser, rendered offline: resampling, gap-free playback, flush.

Needs only Chromium and the static files (served here from the package); no hark server.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

WIRE_RATE = 24000


BLANK_PAGE = b'<!doctype html><html><head><link rel="icon" href="data:,"></head><body></body></html>'


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/":
            return super().do_GET()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(BLANK_PAGE)))
        self.end_headers()
        self.wfile.write(BLANK_PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def static_base_url() -> Iterator[str]:
    """The package's web directory over loopback HTTP, so /static/... resolves as on hark."""
    web = resources.files("hark") / "web"
    handler = partial(_Handler, directory=str(web))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def page(
    chromium_path: str,
    launch_chromium: Callable[..., Browser],
    static_base_url: str,
    watch_errors: Callable[[Page], list[str]],
) -> Iterator[Page]:
    browser = launch_chromium()
    page = browser.new_page()
    errors = watch_errors(page)
    page.goto(static_base_url + "/")
    yield page
    assert errors == []


CAPTURE_JS = """
async ({rate, freq, amplitude, seconds}) => {
  const ctx = new OfflineAudioContext(1, Math.round(rate * seconds), rate);
  await ctx.audioWorklet.addModule("/static/vendor/hark-client/capture-worklet.js");
  const node = new AudioWorkletNode(ctx, "hark-capture", {
    numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
    channelCount: 1, channelCountMode: "explicit",
    processorOptions: { targetRate: 24000, chunkMs: 40 },
  });
  const chunks = [], levels = [];
  node.port.onmessage = (e) => {
    chunks.push(Array.from(new Int16Array(e.data.pcm)));
    levels.push(e.data.rms);
  };
  const osc = new OscillatorNode(ctx, { type: "sine", frequency: freq });
  osc.connect(new GainNode(ctx, { gain: amplitude })).connect(node);
  node.connect(ctx.destination);
  osc.start(0);
  await ctx.startRendering();
  const expected = Math.floor(seconds * 24000 / 960) - 1;
  const t0 = performance.now();
  while (chunks.length < expected && performance.now() - t0 < 3000) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return { sizes: chunks.map((c) => c.length), samples: chunks.flat(), levels };
}
"""


@pytest.mark.parametrize("rate", [48000, 44100, 16000])
def test_capture_resamples_to_24k_pcm16_in_40ms_chunks(page: Page, rate: int) -> None:
    freq, amplitude, seconds = 440.0, 0.5, 1.0
    got = page.evaluate(CAPTURE_JS, {"rate": rate, "freq": freq, "amplitude": amplitude, "seconds": seconds})
    sizes, samples, levels = got["sizes"], got["samples"], got["levels"]
    assert len(sizes) >= 23
    assert set(sizes) == {960}  # 40 ms at 24 kHz
    # Sample k of the output is the input at time k / 24000 s: the same sine, resampled.
    worst = max(
        abs(s - amplitude * 32767 * math.sin(2 * math.pi * freq * k / WIRE_RATE))
        for k, s in enumerate(samples)
    )
    assert worst < 0.01 * 32767, f"resampled sine is off by {worst:.0f} at {rate} Hz"
    for rms in levels:
        assert rms == pytest.approx(amplitude / math.sqrt(2), rel=0.03)


PLAYBACK_JS = """
async ({rate}) => {
  const seconds = 1.2;
  const ctx = new OfflineAudioContext(1, Math.round(rate * seconds), rate);
  await ctx.audioWorklet.addModule("/static/vendor/hark-client/playback-worklet.js");
  const node = new AudioWorkletNode(ctx, "hark-playback", {
    numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: { sourceRate: 24000 },
  });
  node.connect(ctx.destination);
  const messages = [];
  const waiting = new Map();
  node.port.onmessage = (e) => {
    messages.push(e.data);
    const done = waiting.get(e.data.type);
    if (done) { waiting.delete(e.data.type); done(e.data); }
  };
  const ask = (type) => new Promise((resolve) => {
    waiting.set(type === "ping" ? "pong" : "flushed", resolve);
    node.port.postMessage({ type, id: 1 });
  });
  const sine = (itemId, ms, chunkMs) => {
    const total = Math.round(24000 * ms / 1000), size = Math.round(24000 * chunkMs / 1000);
    for (let start = 0; start < total; start += size) {
      const pcm = new Int16Array(Math.min(size, total - start));
      for (let i = 0; i < pcm.length; i++) {
        pcm[i] = Math.round(0.5 * 32767 * Math.sin(2 * Math.PI * 440 * (start + i) / 24000));
      }
      node.port.postMessage({ type: "push", itemId, pcm: pcm.buffer }, [pcm.buffer]);
    }
  };
  // Offline rendering outruns message delivery, so audio is queued while the context is
  // suspended, and a ping/pong round trip confirms it arrived before rendering goes on.
  // Item A: 500 ms of sine in 20 ms chunks, queued before the first render quantum.
  ctx.suspend(0).then(async () => { sine("A", 500, 20); await ask("ping"); ctx.resume(); });
  // Item B: 1 s queued at 0.7 s, flushed (barge-in) at 0.9 s.
  ctx.suspend(0.7).then(async () => { sine("B", 1000, 100); await ask("ping"); ctx.resume(); });
  let flushed = null, flushFrame = null;
  ctx.suspend(0.9).then(async () => {
    flushFrame = Math.round(ctx.currentTime * rate);
    flushed = await ask("flush");
    ctx.resume();
  });
  const buffer = await ctx.startRendering();
  await new Promise((r) => setTimeout(r, 100));
  return { out: Array.from(buffer.getChannelData(0)), flushed, flushFrame, messages };
}
"""


def _spans(out: list[float], threshold: float = 1e-6) -> list[tuple[int, int]]:
    """(start, end) of the runs of sound, merging gaps shorter than 4 samples (zero crossings)."""
    spans: list[tuple[int, int]] = []
    for i, v in enumerate(out):
        if abs(v) > threshold:
            if spans and i - spans[-1][1] <= 4:
                spans[-1] = (spans[-1][0], i + 1)
            else:
                spans.append((i, i + 1))
    return spans


@pytest.mark.parametrize("rate", [48000, 44100])
def test_playback_is_gap_free_resampled_and_flushes_at_once(page: Page, rate: int) -> None:
    got = page.evaluate(PLAYBACK_JS, {"rate": rate})
    out: list[float] = got["out"]
    spans = _spans(out)
    assert len(spans) == 2, f"expected item A then item B, got spans {spans}"

    # Item A: 500 ms played in one piece (twenty-five 20 ms chunks joined without a gap),
    # at the right pitch: the same sine as sent, resampled to the context rate.
    a_start, a_end = spans[0]
    assert (a_end - a_start) / rate == pytest.approx(0.5, abs=0.003)
    start = a_start - 1  # the first sample sent is sin(0) == 0
    worst = max(
        abs(out[start + m] - 0.5 * math.sin(2 * math.pi * 440 * m / rate)) for m in range(1, a_end - start)
    )
    assert worst < 0.01, f"played sine is off by {worst:.4f} at {rate} Hz"

    # Item B was cut off at the flush: nothing after that render quantum, and the player
    # reports how much of B it had played.
    b_start, b_end = spans[1]
    flush_frame = got["flushFrame"]
    assert b_start < flush_frame
    assert flush_frame - 4 <= b_end <= flush_frame  # playing right up to the flush, not a sample after
    assert all(v == 0 for v in out[flush_frame:])
    flushed = got["flushed"]
    assert flushed["item"] == "B"
    played_out = (b_end - b_start) / rate * WIRE_RATE
    assert flushed["samples"] == pytest.approx(played_out, abs=4)
    assert flushed["droppedSamples"] > 0
    assert any(m["type"] == "progress" and m["item"] == "A" for m in got["messages"])
