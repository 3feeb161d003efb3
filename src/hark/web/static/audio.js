// Microphone helpers for the meeting page, on the shared client core (clients/js): the same
// capture worklet and microphone errors as the voice page.

import { CAPTURE_PROCESSOR, requestMicrophone as coreRequestMicrophone } from "./vendor/hark-client/index.js";

export const WIRE_RATE = 24000;

/** The capture worklet's URL (a file: the page's CSP refuses Blob-URL worklets). */
export const captureWorkletUrl = new URL("./vendor/hark-client/capture-worklet.js", import.meta.url).href;

/** Ask for the microphone (mono, with the browser's voice processing); rejects with a readable Error. */
export function requestMicrophone() {
  return coreRequestMicrophone();
}

/**
 * Feed `stream` through the "hark-capture" worklet (its module already added to `ctx`), which
 * posts PCM16 chunks at `targetRate`: onChunk(msg) gets each {type: "chunk", pcm, rms}.
 * Returns the nodes: {source, capture, sink}.
 */
export function connectCapture(ctx, stream, { targetRate, chunkMs, onChunk }) {
  const source = ctx.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(ctx, CAPTURE_PROCESSOR, {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    channelCount: 1,
    channelCountMode: "explicit",
    channelInterpretation: "speakers",
    processorOptions: { targetRate, chunkMs },
  });
  capture.port.onmessage = (event) => {
    const msg = event.data;
    if (msg && msg.type === "chunk") onChunk(msg);
  };
  // The capture node outputs silence; a muted sink keeps it pulled in every browser.
  const sink = ctx.createGain();
  sink.gain.value = 0;
  source.connect(capture);
  capture.connect(sink);
  sink.connect(ctx.destination);
  return { source, capture, sink };
}
