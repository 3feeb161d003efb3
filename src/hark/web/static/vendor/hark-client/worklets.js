// The two AudioWorklet processors, built as source text from the pure cores in dsp.ts and loaded
// from Blob URLs: no separate worklet file to serve or configure in a bundler.
import { CaptureChunker, PlaybackQueue } from "./dsp.js";
export const CAPTURE_PROCESSOR = "hark-capture";
export const PLAYBACK_PROCESSOR = "hark-playback";
/** Source of the capture worklet: posts {type: "chunk", pcm: ArrayBuffer, rms} per chunk. */
export function captureWorkletSource() {
    return `const CaptureChunker = (${CaptureChunker.toString()});
class HarkCaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.chunker = new CaptureChunker(sampleRate, o.targetRate || 24000, o.chunkMs || 40);
    this.running = true;
    this.port.onmessage = (e) => { if (e.data && e.data.type === "stop") this.running = false; };
  }
  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    for (const c of this.chunker.push(input)) {
      this.port.postMessage({ type: "chunk", pcm: c.pcm.buffer, rms: c.rms }, [c.pcm.buffer]);
    }
    return true;
  }
}
registerProcessor(${JSON.stringify(CAPTURE_PROCESSOR)}, HarkCaptureProcessor);
`;
}
/**
 * Source of the playback worklet. In: {type: "push", itemId, pcm}, {type: "flush", id},
 * {type: "ping", id}. Out: {type: "progress", item, samples, playing, queuedSamples} about 20
 * times a second and on every start/stop, {type: "flushed", id, item, samples, droppedSamples},
 * {type: "pong", id, queuedSamples}.
 */
export function playbackWorkletSource() {
    return `const PlaybackQueue = (${PlaybackQueue.toString()});
class HarkPlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.q = new PlaybackQueue(o.sourceRate || 24000, sampleRate, o.prebufferMs ?? 40, o.maxWaitMs ?? 80);
    this.reportFrames = Math.round(sampleRate * 0.05);
    this.sinceReport = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }
  onMessage(msg) {
    if (!msg) return;
    if (msg.type === "push") this.q.push(msg.itemId, new Int16Array(msg.pcm));
    else if (msg.type === "flush") {
      const r = this.q.flush();
      this.port.postMessage({ type: "flushed", id: msg.id, item: r.item, samples: r.samples, droppedSamples: r.droppedSamples });
      this.report();
    } else if (msg.type === "ping") this.port.postMessage({ type: "pong", id: msg.id, queuedSamples: this.q.queued });
  }
  report() {
    this.sinceReport = 0;
    const q = this.q;
    this.port.postMessage({ type: "progress", item: q.item, samples: q.itemSamples, playing: q.playing, queuedSamples: q.queued });
  }
  process(_inputs, outputs) {
    const output = outputs[0];
    const changed = this.q.render(output[0]);
    for (let c = 1; c < output.length; c++) output[c].set(output[0]);
    this.sinceReport += output[0].length;
    if (changed || (this.q.playing && this.sinceReport >= this.reportFrames)) this.report();
    return true;
  }
}
registerProcessor(${JSON.stringify(PLAYBACK_PROCESSOR)}, HarkPlaybackProcessor);
`;
}
const urls = new Map();
function blobUrl(key, source) {
    let url = urls.get(key);
    if (url === undefined) {
        url = URL.createObjectURL(new Blob([source()], { type: "text/javascript" }));
        urls.set(key, url);
    }
    return url;
}
/** A Blob URL of the capture worklet, for `audioWorklet.addModule()`. Browser only. */
export function captureWorkletUrl() {
    return blobUrl(CAPTURE_PROCESSOR, captureWorkletSource);
}
/** A Blob URL of the playback worklet, for `audioWorklet.addModule()`. Browser only. */
export function playbackWorkletUrl() {
    return blobUrl(PLAYBACK_PROCESSOR, playbackWorkletSource);
}
