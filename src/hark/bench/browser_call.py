"""Headless Chromium on a call to hark, keeping what its Opus encoder sends (``browser_tail``).

The page calls as tests/browser/webrtc_call.html does (the fake microphone on a track, the
``oai-events`` channel), with insertable streams on the sender (``createEncodedStreams``): every
encoded frame is copied on its way out. It also records the microphone track as PCM
(``MediaRecorder``, WebM): what a WebSocket client on the same page would send.
"""

from __future__ import annotations

import base64
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hark.bench.webrtc import CALL_RATE

PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body><script>
window.rtc = { frames: [], pcm: [], error: null, open: false };
function tap(mic) {
  // The microphone as the page itself has it (what a WebSocket client would send), recorded as
  // PCM in WebM off the track itself: no real-time JavaScript that could drop samples under load.
  const recorder = new MediaRecorder(mic, { mimeType: "audio/webm;codecs=pcm" });
  recorder.ondataavailable = (e) => window.rtc.pcm.push(e.data);
  recorder.start(500);
}
window.startCall = async (base, processing) => {
  try {
    const pc = new RTCPeerConnection({ encodedInsertableStreams: true });
    window.rtc.pc = pc;
    const on = processing === "voice";
    const mic = await navigator.mediaDevices.getUserMedia({ audio: {
      echoCancellation: on, noiseSuppression: on, autoGainControl: on, channelCount: { ideal: 1 } } });
    tap(mic);
    const sender = pc.addTrack(mic.getTracks()[0], mic);
    const { readable, writable } = sender.createEncodedStreams();
    readable.pipeThrough(new TransformStream({ transform(frame, controller) {
      const bytes = new Uint8Array(frame.data);
      let text = "";
      for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
      window.rtc.frames.push([frame.timestamp, btoa(text)]);
      controller.enqueue(frame);
    } })).pipeTo(writable);
    const channel = pc.createDataChannel("oai-events");
    channel.onopen = () => { window.rtc.open = true; };
    await pc.setLocalDescription(await pc.createOffer());
    const response = await fetch(base + "/v1/realtime/calls",
      { method: "POST", body: pc.localDescription.sdp, headers: { "Content-Type": "application/sdp" } });
    if (response.status !== 201) throw new Error("offer refused: " + response.status);
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  } catch (err) { window.rtc.error = String(err); }
};
window.takeFrames = () => window.rtc.frames.splice(0);
window.takePcm = async () => {
  const bytes = new Uint8Array(await new Blob(window.rtc.pcm.splice(0)).arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(text);
};
</script></body></html>"""
BROWSER_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-quic",
    "--allow-loopback-in-peer-connection",
)
CHROMIUM = "/usr/bin/chromium"


def write_wav(path: Path, pcm48: bytes) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(CALL_RATE)
        out.writeframes(pcm48)


@dataclass(frozen=True, slots=True)
class Recording:
    frames: list[tuple[int, bytes]]
    """What Chromium's encoder sent: ``(rtp_timestamp, payload)``."""
    captured: bytes
    """The microphone as the page had it (a WebM of PCM, ``webm_pcm`` reads it), the same time."""
    answer: str
    """The answer's Opus lines: what the encoder was told."""


def record(base_url: str, wav: Path, seconds: float, processing: str) -> Recording:
    """A call to ``base_url`` with ``wav`` as Chromium's microphone, ``seconds`` after it connected."""
    from playwright.sync_api import sync_playwright

    frames: list[tuple[int, bytes]] = []
    captured = bytearray()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*BROWSER_ARGS, f"--use-file-for-fake-audio-capture={wav}"],
        )
        try:
            page = browser.new_context(permissions=["microphone"]).new_page()
            page.goto(base_url + "/health")
            page.set_content(PAGE)
            page.evaluate("([base, p]) => window.startCall(base, p)", [base_url, processing])
            page.wait_for_function("() => window.rtc.error !== null || window.rtc.open", timeout=20_000)
            error = page.evaluate("() => window.rtc.error")
            if error:
                raise RuntimeError(error)
            answer: str = page.evaluate("() => window.rtc.pc.remoteDescription.sdp")
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(1.0)
                for ts, data in page.evaluate("() => window.takeFrames()"):
                    frames.append((int(ts), base64.b64decode(data)))
                captured.extend(base64.b64decode(page.evaluate("() => window.takePcm()")))
        finally:
            browser.close()
    opus = [line for line in answer.splitlines() if "opus" in line.lower() or "a=fmtp:111" in line]
    return Recording(frames, bytes(captured), " | ".join(opus))


def webm_pcm(webm: bytes) -> bytes:
    """The recorded track as mono PCM16 at 48 kHz."""
    import io

    import av

    out = bytearray()
    resampler: Any = av.AudioResampler(format="s16", layout="mono", rate=CALL_RATE)
    with av.open(io.BytesIO(webm), mode="r") as container:
        for frame in container.decode(audio=0):
            for converted in resampler.resample(frame):
                out += converted.to_ndarray().tobytes()
    for converted in resampler.resample(None):
        out += converted.to_ndarray().tobytes()
    return bytes(out)
