// Generated from clients/js (npm run vendor); do not edit.
const PlaybackQueue = (class PlaybackQueue {
    step;
    prebuffer;
    maxWaitFrames;
    queue = [];
    head = 0;
    offset = 0;
    queued = 0;
    playing = false;
    s0 = 0;
    s1 = 0;
    frac = 0;
    waitFrames = 0;
    item = null;
    itemSamples = 0;
    playedByItem = new Map();
    constructor(sourceRate, outputRate, prebufferMs = 40, maxWaitMs = 80) {
        this.step = sourceRate / outputRate;
        this.prebuffer = Math.round((sourceRate * prebufferMs) / 1000);
        this.maxWaitFrames = Math.round((outputRate * maxWaitMs) / 1000);
    }
    push(item, pcm) {
        if (pcm.length === 0)
            return;
        const data = new Float32Array(pcm.length);
        for (let i = 0; i < pcm.length; i++)
            data[i] = pcm[i] / 32768;
        this.queue.push({ item, data });
        this.queued += data.length;
    }
    flush() {
        const result = { item: this.item, samples: this.itemSamples, droppedSamples: this.queued };
        this.queue = [];
        this.head = 0;
        this.offset = 0;
        this.queued = 0;
        this.playing = false;
        this.frac = 0;
        this.waitFrames = 0;
        return result;
    }
    /** Fill `out` (one render quantum at the output rate); returns whether `playing` changed. */
    render(out) {
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
        for (let i = 0; i < n; i++) {
            if (!this.playing) {
                out[i] = 0;
                continue;
            }
            out[i] = this.s0 + (this.s1 - this.s0) * this.frac;
            this.frac += this.step;
            while (this.frac >= 1) {
                this.frac -= 1;
                this.s0 = this.s1;
                if (this.queued > 0) {
                    this.s1 = this.take();
                }
                else {
                    this.playing = false;
                    this.frac = 0;
                    break;
                }
            }
        }
        return this.playing !== wasPlaying;
    }
    take() {
        const chunk = this.queue[this.head];
        if (chunk.item !== this.item) {
            if (this.item !== null)
                this.playedByItem.set(this.item, this.itemSamples);
            this.item = chunk.item;
            this.itemSamples = this.playedByItem.get(chunk.item) ?? 0;
            // Only the items still in the queue can come back; forget the rest.
            if (this.playedByItem.size > 32)
                this.playedByItem.clear();
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
});
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
registerProcessor("hark-playback", HarkPlaybackProcessor);
