// Generated from clients/js (npm run vendor); do not edit.
const CaptureChunker = (class CaptureChunker {
    targetRate;
    chunkSamples;
    step;
    // Read position in input samples relative to the current block; -1 is the previous block's
    // last sample (kept in `prev`), so interpolation runs across block edges.
    pos = 0;
    prev = 0;
    mix = null;
    chunk;
    fill = 0;
    sumSquares = 0;
    constructor(inputRate, targetRate, chunkMs) {
        this.targetRate = targetRate;
        this.chunkSamples = Math.max(1, Math.round((targetRate * chunkMs) / 1000));
        this.step = inputRate / targetRate;
        this.chunk = new Int16Array(this.chunkSamples);
    }
    /** Feed one block (one Float32Array per channel); returns the chunks it completed. */
    push(channels) {
        const out = [];
        if (channels.length === 0 || channels[0].length === 0)
            return out;
        const x = this.mono(channels);
        const n = x.length;
        let pos = this.pos;
        while (pos < n - 1) {
            const i0 = Math.floor(pos);
            const a = i0 < 0 ? this.prev : x[i0];
            const b = x[i0 + 1];
            const s0 = a + (b - a) * (pos - i0);
            const s = s0 > 1 ? 1 : s0 < -1 ? -1 : s0;
            this.chunk[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
            this.sumSquares += s * s;
            if (this.fill === this.chunkSamples) {
                out.push({ pcm: this.chunk, rms: Math.sqrt(this.sumSquares / this.chunkSamples) });
                this.chunk = new Int16Array(this.chunkSamples);
                this.fill = 0;
                this.sumSquares = 0;
            }
            pos += this.step;
        }
        this.pos = pos - n;
        this.prev = x[n - 1];
        return out;
    }
    mono(channels) {
        if (channels.length === 1)
            return channels[0];
        const n = channels[0].length;
        if (!this.mix || this.mix.length !== n)
            this.mix = new Float32Array(n);
        const mix = this.mix;
        mix.fill(0);
        for (const ch of channels)
            for (let i = 0; i < n; i++)
                mix[i] += ch[i];
        for (let i = 0; i < n; i++)
            mix[i] /= channels.length;
        return mix;
    }
});
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
registerProcessor("hark-capture", HarkCaptureProcessor);
