// hark playback processor (AudioWorkletGlobalScope).
//
// A queue of PCM16 chunks at 24 kHz, each tagged with the assistant item it belongs to, read
// gap-free and resampled to the context rate by linear interpolation. "flush" drops everything
// queued at once (barge-in) and answers with how much of the current item had been played.
// Progress (samples played per item) is reported ~20 times a second.

class HarkPlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.sourceRate = opts.sourceRate || 24000;
    this.step = this.sourceRate / sampleRate;
    // Before starting (or after running dry), wait for a little audio so the first
    // chunks are not played in stutters; never wait longer than maxWait.
    this.prebuffer = Math.round((this.sourceRate * (opts.prebufferMs ?? 40)) / 1000);
    this.maxWaitFrames = Math.round((sampleRate * (opts.maxWaitMs ?? 80)) / 1000);
    this.reportFrames = Math.round(sampleRate * 0.05);

    this.queue = []; // [{ item, data: Float32Array }]
    this.head = 0; // index of the chunk being read
    this.offset = 0; // next sample in queue[head]
    this.queued = 0; // samples not yet read

    this.playing = false;
    this.s0 = 0;
    this.s1 = 0;
    this.frac = 0;
    this.waitFrames = 0;
    this.sinceReport = 0;

    this.item = null; // item now being read
    this.itemSamples = 0; // samples of it read so far
    this.playedByItem = new Map();

    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(msg) {
    if (!msg) return;
    if (msg.type === "push") {
      const pcm = new Int16Array(msg.pcm);
      const data = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
      if (data.length > 0) {
        this.queue.push({ item: msg.itemId, data });
        this.queued += data.length;
      }
    } else if (msg.type === "flush") {
      const dropped = this.queued;
      const item = this.item;
      const samples = this.itemSamples;
      this.queue = [];
      this.head = 0;
      this.offset = 0;
      this.queued = 0;
      this.playing = false;
      this.frac = 0;
      this.waitFrames = 0;
      this.port.postMessage({
        type: "flushed",
        id: msg.id,
        item,
        samples,
        droppedSamples: dropped,
      });
      this.report(true);
    } else if (msg.type === "ping") {
      // Messages are handled in order: a pong means everything sent before it is queued.
      this.port.postMessage({ type: "pong", id: msg.id, queuedSamples: this.queued });
    }
  }

  take() {
    const chunk = this.queue[this.head];
    if (chunk.item !== this.item) {
      if (this.item !== null) this.playedByItem.set(this.item, this.itemSamples);
      this.item = chunk.item;
      this.itemSamples = this.playedByItem.get(chunk.item) || 0;
      // Only the items still in the queue can come back; forget the rest.
      if (this.playedByItem.size > 32) this.playedByItem.clear();
    }
    const value = chunk.data[this.offset++];
    this.itemSamples++;
    this.queued--;
    if (this.offset >= chunk.data.length) {
      this.queue[this.head] = undefined;
      this.head++;
      this.offset = 0;
      if (this.head >= 64 && this.head * 2 >= this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
    }
    return value;
  }

  report(force) {
    this.sinceReport = 0;
    this.port.postMessage({
      type: "progress",
      item: this.item,
      samples: this.itemSamples,
      playing: this.playing,
      queuedSamples: this.queued,
      force: !!force,
    });
  }

  process(_inputs, outputs) {
    const output = outputs[0];
    const out = output[0];
    const n = out.length;
    const wasPlaying = this.playing;

    if (!this.playing && this.queued > 0) {
      this.waitFrames += n;
      if (this.queued >= this.prebuffer || this.waitFrames >= this.maxWaitFrames) {
        this.playing = true;
        this.waitFrames = 0;
        this.frac = 0;
        this.s0 = this.take();
        this.s1 = this.queued > 0 ? this.take() : this.s0;
      }
    }

    const step = this.step;
    for (let i = 0; i < n; i++) {
      if (!this.playing) {
        out[i] = 0;
        continue;
      }
      out[i] = this.s0 + (this.s1 - this.s0) * this.frac;
      this.frac += step;
      while (this.frac >= 1) {
        this.frac -= 1;
        this.s0 = this.s1;
        if (this.queued > 0) {
          this.s1 = this.take();
        } else {
          this.playing = false;
          this.frac = 0;
          break;
        }
      }
    }
    for (let c = 1; c < output.length; c++) output[c].set(out);

    this.sinceReport += n;
    if (this.playing !== wasPlaying || (this.playing && this.sinceReport >= this.reportFrames)) {
      this.report(false);
    }
    return true;
  }
}

registerProcessor("hark-playback", HarkPlaybackProcessor);
