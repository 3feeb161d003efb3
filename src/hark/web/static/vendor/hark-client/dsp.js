// Pure audio cores shared by the AudioWorklets (worklets.ts) and the unit tests.
//
// Each class is self-contained — it touches only its own fields and the language's globals —
// because worklets.ts ships it into the AudioWorkletGlobalScope as source text
// (`Class.toString()`): one implementation runs in the worklet and in `node --test`.
/**
 * Microphone frames at the context rate → mono → linear-interpolation resampling to
 * `targetRate` → PCM16 chunks of `chunkMs`. State carries across blocks, so a stream cut into
 * any block sizes gives the same samples.
 */
export class CaptureChunker {
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
}
/**
 * Reply audio: PCM16 chunks at `sourceRate`, each tagged with its item, read gap-free and
 * resampled to `outputRate` by linear interpolation. Before starting (or after running dry) it
 * waits for `prebufferMs` of audio, never longer than `maxWaitMs`. `flush()` drops everything
 * at once (barge-in) and says how much of the current item had been played.
 */
export class PlaybackQueue {
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
}
