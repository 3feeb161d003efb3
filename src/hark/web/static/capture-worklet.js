// hark capture processor (AudioWorkletGlobalScope).
//
// Takes the microphone at whatever rate the AudioContext runs (the global `sampleRate`),
// downmixes to mono, resamples to 24 kHz by linear interpolation and posts PCM16 chunks of
// ~40 ms to the main thread, each with the chunk's RMS level for the visualiser.

class HarkCaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.targetRate = opts.targetRate || 24000;
    this.chunkSamples = Math.max(1, Math.round((this.targetRate * (opts.chunkMs || 40)) / 1000));
    // Input samples advanced per output sample.
    this.step = sampleRate / this.targetRate;
    // Read position in input samples relative to the current block; -1 is the previous
    // block's last sample (kept in `prev`), so interpolation runs across block edges.
    this.pos = 0;
    this.prev = 0;
    this.mix = null;
    this.chunk = new Int16Array(this.chunkSamples);
    this.fill = 0;
    this.sumSquares = 0;
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === "stop") this.running = false;
    };
  }

  mono(input) {
    if (input.length === 1) return input[0];
    const n = input[0].length;
    if (!this.mix || this.mix.length !== n) this.mix = new Float32Array(n);
    const mix = this.mix;
    mix.fill(0);
    for (let c = 0; c < input.length; c++) {
      const ch = input[c];
      for (let i = 0; i < n; i++) mix[i] += ch[i];
    }
    const scale = 1 / input.length;
    for (let i = 0; i < n; i++) mix[i] *= scale;
    return mix;
  }

  emit(sample) {
    const s = sample > 1 ? 1 : sample < -1 ? -1 : sample;
    this.chunk[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    this.sumSquares += s * s;
    if (this.fill === this.chunkSamples) {
      const rms = Math.sqrt(this.sumSquares / this.chunkSamples);
      const buffer = this.chunk.buffer;
      this.port.postMessage({ type: "chunk", pcm: buffer, rms }, [buffer]);
      this.chunk = new Int16Array(this.chunkSamples);
      this.fill = 0;
      this.sumSquares = 0;
    }
  }

  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    if (!input || input.length === 0 || input[0].length === 0) return true;
    const x = this.mono(input);
    const n = x.length;
    const step = this.step;
    let pos = this.pos;
    while (pos < n - 1) {
      const i0 = Math.floor(pos);
      const a = i0 < 0 ? this.prev : x[i0];
      const b = x[i0 + 1];
      this.emit(a + (b - a) * (pos - i0));
      pos += step;
    }
    this.pos = pos - n;
    this.prev = x[n - 1];
    return true;
  }
}

registerProcessor("hark-capture", HarkCaptureProcessor);
