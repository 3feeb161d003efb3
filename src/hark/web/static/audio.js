// Microphone capture and reply playback, both through AudioWorklets on one AudioContext that
// runs at the browser's default rate; the worklets resample to and from 24 kHz themselves.

export const WIRE_RATE = 24000;
const CHUNK_MS = 40;

const captureUrl = new URL("./capture-worklet.js", import.meta.url);
const playbackUrl = new URL("./playback-worklet.js", import.meta.url);

/** A readable message for a getUserMedia / AudioContext failure. */
export function describeAudioError(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "Microphone access was blocked. Allow the microphone for this site and press Start again.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No microphone was found. Connect one and press Start again.";
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return "The microphone is in use by another application or could not be opened.";
  }
  return (err && err.message) || String(err);
}

/** Ask for the microphone (mono, with the browser's voice processing); rejects with a readable Error. */
export function requestMicrophone() {
  return navigator.mediaDevices
    .getUserMedia({
      audio: {
        echoCancellation: true,
        noiseSuppression: true,
        autoGainControl: true,
        channelCount: { ideal: 1 },
      },
      video: false,
    })
    .catch((err) => {
      throw new Error(describeAudioError(err));
    });
}

/**
 * Feed `stream` through the "hark-capture" worklet (its module already added to `ctx`), which
 * posts PCM16 chunks at `targetRate`: onChunk(msg) gets each {type: "chunk", pcm, rms}.
 * Returns the nodes: {source, capture, sink}.
 */
export function connectCapture(ctx, stream, { targetRate, chunkMs, onChunk }) {
  const source = ctx.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(ctx, "hark-capture", {
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

export class AudioEngine {
  /**
   * @param {{onChunk: (pcm: ArrayBuffer) => void, onLevel: (rms: number) => void,
   *          onPlayback: (p: {item: string|null, ms: number, playing: boolean}) => void}} handlers
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.ctx = null;
    this.stream = null;
    this.source = null;
    this.capture = null;
    this.player = null;
    this.sink = null;
    this.playedSamples = new Map(); // item id → samples played
    this.enqueuedSamples = new Map(); // item id → samples handed to the player
    this.playing = false;
    this.queuedSamples = 0;
    this.flushSeq = 0;
    this.pendingFlush = new Map();
    this.closed = false;
  }

  /** Must be called from a user gesture (the click on Start): it creates the AudioContext. */
  async start() {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error(
        "The browser only allows microphone access on HTTPS or on localhost. " +
          "Open this page through https:// or http://localhost.",
      );
    }
    if (typeof AudioWorkletNode === "undefined") {
      throw new Error("This browser does not support AudioWorklet; use a current Chromium or Firefox.");
    }
    // Created synchronously inside the click handler so autoplay policies let it run.
    const ctx = new AudioContext({ latencyHint: "interactive" });
    this.ctx = ctx;
    const resumed = ctx.resume();
    try {
      const streamPromise = requestMicrophone();
      const modules = Promise.all([
        ctx.audioWorklet.addModule(captureUrl.href),
        ctx.audioWorklet.addModule(playbackUrl.href),
      ]);
      let stream;
      try {
        stream = await streamPromise;
      } catch (err) {
        modules.catch(() => {});
        throw err;
      }
      this.stream = stream;
      await modules;
      if (this.closed) throw new Error("stopped");

      this.player = new AudioWorkletNode(ctx, "hark-playback", {
        numberOfInputs: 0,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: { sourceRate: WIRE_RATE },
      });
      this.player.port.onmessage = (event) => this.onPlayerMessage(event.data);
      this.player.connect(ctx.destination);

      ({ source: this.source, capture: this.capture, sink: this.sink } = connectCapture(ctx, stream, {
        targetRate: WIRE_RATE,
        chunkMs: CHUNK_MS,
        onChunk: (msg) => {
          this.handlers.onLevel(msg.rms);
          this.handlers.onChunk(msg.pcm);
        },
      }));
      await resumed;
      if (ctx.state !== "running") await ctx.resume();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  get sampleRate() {
    return this.ctx ? this.ctx.sampleRate : 0;
  }

  /** Queue PCM16 24 kHz reply audio of `itemId` for playback. */
  enqueue(itemId, pcm) {
    if (!this.player) return;
    const samples = pcm.byteLength >> 1;
    this.enqueuedSamples.set(itemId, (this.enqueuedSamples.get(itemId) || 0) + samples);
    this.queuedSamples += samples;
    this.player.port.postMessage({ type: "push", itemId, pcm }, [pcm]);
  }

  /** Milliseconds of `itemId` actually played so far. */
  playedMs(itemId) {
    return ((this.playedSamples.get(itemId) || 0) * 1000) / WIRE_RATE;
  }

  /** Milliseconds of `itemId` handed to the player. */
  enqueuedMs(itemId) {
    return ((this.enqueuedSamples.get(itemId) || 0) * 1000) / WIRE_RATE;
  }

  /** True while reply audio is playing or waiting in the queue. */
  get busy() {
    return this.playing || this.queuedSamples > 0;
  }

  /**
   * Drop everything queued, at once. Resolves with {item, ms} for the item that was being
   * played (null item when none) once the player has confirmed.
   */
  flush() {
    this.queuedSamples = 0;
    if (!this.player) return Promise.resolve({ item: null, ms: 0 });
    const id = ++this.flushSeq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // The player did not answer (suspended context): use the last progress report.
        this.pendingFlush.delete(id);
        this.playing = false;
        resolve({ item: this.lastItem || null, ms: this.lastItem ? this.playedMs(this.lastItem) : 0 });
      }, 250);
      this.pendingFlush.set(id, (msg) => {
        clearTimeout(timer);
        resolve({ item: msg.item, ms: (msg.samples * 1000) / WIRE_RATE });
      });
      this.player.port.postMessage({ type: "flush", id });
    });
  }

  onPlayerMessage(msg) {
    if (!msg) return;
    if (msg.item !== null && msg.item !== undefined) {
      this.playedSamples.set(msg.item, msg.samples);
      this.lastItem = msg.item;
    }
    if (msg.type === "progress") {
      this.playing = msg.playing;
      this.queuedSamples = msg.queuedSamples;
    } else if (msg.type === "flushed") {
      this.playing = false;
      const done = this.pendingFlush.get(msg.id);
      if (done) {
        this.pendingFlush.delete(msg.id);
        done(msg);
      }
    }
    this.handlers.onPlayback({
      item: msg.item ?? null,
      ms: msg.item ? this.playedMs(msg.item) : 0,
      playing: this.playing,
    });
  }

  async stop() {
    this.closed = true;
    for (const done of this.pendingFlush.values()) done({ item: null, samples: 0 });
    this.pendingFlush.clear();
    if (this.capture) {
      this.capture.port.postMessage({ type: "stop" });
      this.capture.port.onmessage = null;
    }
    for (const node of [this.source, this.capture, this.sink, this.player]) {
      try {
        if (node) node.disconnect();
      } catch {
        /* already disconnected */
      }
    }
    if (this.player) this.player.port.onmessage = null;
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    const ctx = this.ctx;
    this.ctx = this.stream = this.source = this.capture = this.sink = this.player = null;
    this.playing = false;
    this.queuedSamples = 0;
    if (ctx && ctx.state !== "closed") {
      try {
        await ctx.close();
      } catch {
        /* closing twice is harmless */
      }
    }
  }
}
